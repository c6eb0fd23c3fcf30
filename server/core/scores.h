#ifndef BERTSERVE_SERVER_CORE_SCORES_H_
#define BERTSERVE_SERVER_CORE_SCORES_H_

#include <string>
#include <vector>

#include "bertserve/v1/inference.pb.h"

namespace bertserve::core {

// Turns one row of logits into scores, best first (ties by label index).
// Probabilities are a softmax over the row, or a sigmoid when the model has a
// single logit; `raw` returns the logits themselves. `top_k` 0 or above the
// label count returns every label. `labels` has one name per logit.
std::vector<v1::LabelScore> ScoreRow(const float* logits, int num_logits, bool raw,
                                     int top_k, const std::vector<std::string>& labels);

}  // namespace bertserve::core

#endif  // BERTSERVE_SERVER_CORE_SCORES_H_
