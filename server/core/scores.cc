#include "server/core/scores.h"

#include <algorithm>
#include <cmath>

namespace bertserve::core {

std::vector<v1::LabelScore> ScoreRow(const float* logits, int num_logits, bool raw,
                                     int top_k, const std::vector<std::string>& labels) {
  // Double precision and max-subtraction keep the softmax stable for large
  // logits and within float rounding of torch.softmax.
  std::vector<double> scores(num_logits);
  if (raw) {
    for (int i = 0; i < num_logits; ++i) scores[i] = logits[i];
  } else if (num_logits == 1) {
    scores[0] = 1.0 / (1.0 + std::exp(-static_cast<double>(logits[0])));
  } else {
    const double max = *std::max_element(logits, logits + num_logits);
    double sum = 0;
    for (int i = 0; i < num_logits; ++i) {
      scores[i] = std::exp(static_cast<double>(logits[i]) - max);
      sum += scores[i];
    }
    for (double& s : scores) s /= sum;
  }
  std::vector<int> order(num_logits);
  for (int i = 0; i < num_logits; ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(),
                   [&](int a, int b) { return scores[a] > scores[b]; });
  const int keep = (top_k <= 0 || top_k > num_logits) ? num_logits : top_k;
  std::vector<v1::LabelScore> out;
  out.reserve(keep);
  for (int k = 0; k < keep; ++k) {
    v1::LabelScore score;
    score.set_index(order[k]);
    score.set_label(labels[order[k]]);
    score.set_score(static_cast<float>(scores[order[k]]));
    out.push_back(std::move(score));
  }
  return out;
}

}  // namespace bertserve::core
