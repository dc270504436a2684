// Linear assignment by shortest augmenting paths (Crouse, "On implementing 2D rectangular
// assignment algorithms", IEEE TAES 2016 -- the algorithm of scipy's linear_sum_assignment),
// square and maximizing, with a warm start from an earlier assignment and its column duals.
//
// Built and called by weightspace/align/lap.py (plain C ABI through ctypes, no torch headers).
// Minimizes cost = -score under dual feasibility u[i] + v[j] <= cost[i][j], tight on assigned
// pairs. Warm start: given any v, u[i] = min_j (cost[i][j] - v[j]) is feasible; row i keeps
// its earlier column if that pair is tight, and only the other rows are augmented. Weight
// matching re-solves a group after a neighbour moved a little, so most rows stay tight and
// a solve costs a few augmenting paths instead of n.
#include <cstdint>
#include <limits>
#include <utility>
#include <vector>

namespace {

// score: n*n row-major, float or double (read as double: a float score gives the same answer
// as the same values converted first). col4row: in (warm) the earlier assignment, out the
// optimum. v: in (warm) the earlier column duals, out this solve's. Returns the augmented
// rows, or -1 when a row has no finite path (non-finite scores).
template <typename T>
int64_t solve(int64_t n, const T* score, int64_t* col4row, double* v, int32_t warm) {
  const double inf = std::numeric_limits<double>::infinity();
  std::vector<double> u(n), spc(n);
  std::vector<int64_t> row4col(n, -1), path(n, -1), remaining(n), free_rows;
  std::vector<char> sr(n), sc(n);
  if (!warm) {
    for (int64_t j = 0; j < n; ++j) v[j] = 0.0;
  }
  for (int64_t i = 0; i < n; ++i) {
    const T* row = score + i * n;
    double low = inf;
    for (int64_t j = 0; j < n; ++j) {
      const double r = -static_cast<double>(row[j]) - v[j];
      if (r < low) low = r;
    }
    u[i] = low;
  }
  for (int64_t i = 0; i < n; ++i) {
    const int64_t j = warm ? col4row[i] : -1;
    if (j >= 0 && j < n && row4col[j] == -1 && -static_cast<double>(score[i * n + j]) - v[j] == u[i]) {
      row4col[j] = i;
    } else {
      col4row[i] = -1;
      free_rows.push_back(i);
    }
  }
  for (const int64_t cur : free_rows) {
    std::fill(sr.begin(), sr.end(), 0);
    std::fill(sc.begin(), sc.end(), 0);
    std::fill(spc.begin(), spc.end(), inf);
    int64_t left = n;
    for (int64_t k = 0; k < n; ++k) remaining[k] = n - 1 - k;
    double min_val = 0.0;
    int64_t i = cur, sink = -1;
    while (sink == -1) {
      int64_t index = -1;
      double lowest = inf;
      sr[i] = 1;
      const T* row = score + i * n;
      for (int64_t k = 0; k < left; ++k) {
        const int64_t j = remaining[k];
        const double r = min_val - static_cast<double>(row[j]) - u[i] - v[j];
        if (r < spc[j]) {
          path[j] = i;
          spc[j] = r;
        }
        if (spc[j] < lowest || (spc[j] == lowest && row4col[j] == -1)) {
          lowest = spc[j];
          index = k;
        }
      }
      min_val = lowest;
      if (index == -1 || min_val == inf) return -1;
      const int64_t j = remaining[index];
      if (row4col[j] == -1) {
        sink = j;
      } else {
        i = row4col[j];
      }
      sc[j] = 1;
      remaining[index] = remaining[--left];
    }
    u[cur] += min_val;
    for (int64_t r = 0; r < n; ++r) {
      if (sr[r] && r != cur) u[r] += min_val - spc[col4row[r]];
    }
    for (int64_t j = 0; j < n; ++j) {
      if (sc[j]) v[j] -= min_val - spc[j];
    }
    int64_t j = sink;
    while (true) {
      const int64_t r = path[j];
      row4col[j] = r;
      std::swap(col4row[r], j);
      if (r == cur) break;
    }
  }
  return static_cast<int64_t>(free_rows.size());
}

}  // namespace

extern "C" {

int64_t ws_lap_solve(int64_t n, const double* score, int64_t* col4row, double* v, int32_t warm) {
  return solve(n, score, col4row, v, warm);
}

int64_t ws_lap_solve_f32(int64_t n, const float* score, int64_t* col4row, double* v, int32_t warm) {
  return solve(n, score, col4row, v, warm);
}

}  // extern "C"
