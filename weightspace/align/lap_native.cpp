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

// score: n*n row-major. col4row: in (warm) the earlier assignment, out the optimum.
// v: in (warm) the earlier column duals, out this solve's. Returns the augmented rows, or -1
// when a row has no finite path (non-finite scores).
int64_t solve(int64_t n, const double* score, int64_t* col4row, double* v, int32_t warm) {
  const double inf = std::numeric_limits<double>::infinity();
  std::vector<double> u(n), spc(n);
  std::vector<int64_t> row4col(n, -1), path(n, -1), remaining(n), free_rows;
  std::vector<char> sr(n), sc(n);
  if (!warm) {
    for (int64_t j = 0; j < n; ++j) v[j] = 0.0;
  }
  for (int64_t i = 0; i < n; ++i) {
    const double* row = score + i * n;
    double low = inf;
    for (int64_t j = 0; j < n; ++j) {
      const double r = -row[j] - v[j];
      if (r < low) low = r;
    }
    u[i] = low;
  }
  for (int64_t i = 0; i < n; ++i) {
    const int64_t j = warm ? col4row[i] : -1;
    if (j >= 0 && j < n && row4col[j] == -1 && -score[i * n + j] - v[j] == u[i]) {
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
      const double* row = score + i * n;
      for (int64_t k = 0; k < left; ++k) {
        const int64_t j = remaining[k];
        const double r = min_val - row[j] - u[i] - v[j];
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

// sum over r < rows, c < cols, t < tail of a[(r * cols + c) * tail + t] * b[off[r] + col[c] + t] in
// double: <A, g . B> for a B permuted by index (off and col gather the permuted axes) without
// the permuted copy. Float products are exact in double. Four accumulators take turns along t
// (along c where tail is 1), the leftover terms of each stretch going to the first; the order
// is fixed, so the value does not depend on the machine or the thread.
template <typename T>
double gathered_dot(const T* a, const T* b, int64_t rows, const int64_t* off, int64_t cols, const int64_t* col,
                    int64_t tail) {
  double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0;
  if (tail == 1) {
    for (int64_t r = 0; r < rows; ++r) {
      const T* x = a + r * cols;
      const T* y = b + off[r];
      int64_t c = 0;
      for (; c + 4 <= cols; c += 4) {
        s0 += static_cast<double>(x[c]) * static_cast<double>(y[col[c]]);
        s1 += static_cast<double>(x[c + 1]) * static_cast<double>(y[col[c + 1]]);
        s2 += static_cast<double>(x[c + 2]) * static_cast<double>(y[col[c + 2]]);
        s3 += static_cast<double>(x[c + 3]) * static_cast<double>(y[col[c + 3]]);
      }
      for (; c < cols; ++c) s0 += static_cast<double>(x[c]) * static_cast<double>(y[col[c]]);
    }
  } else {
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t c = 0; c < cols; ++c) {
        const T* x = a + (r * cols + c) * tail;
        const T* y = b + off[r] + col[c];
        int64_t t = 0;
        for (; t + 4 <= tail; t += 4) {
          s0 += static_cast<double>(x[t]) * static_cast<double>(y[t]);
          s1 += static_cast<double>(x[t + 1]) * static_cast<double>(y[t + 1]);
          s2 += static_cast<double>(x[t + 2]) * static_cast<double>(y[t + 2]);
          s3 += static_cast<double>(x[t + 3]) * static_cast<double>(y[t + 3]);
        }
        for (; t < tail; ++t) s0 += static_cast<double>(x[t]) * static_cast<double>(y[t]);
      }
    }
  }
  return (s0 + s1) + (s2 + s3);
}

}  // namespace

extern "C" {

double ws_gathered_dot(const double* a, const double* b, int64_t rows, const int64_t* off, int64_t cols,
                       const int64_t* col, int64_t tail) {
  return gathered_dot(a, b, rows, off, cols, col, tail);
}

double ws_gathered_dot_f32(const float* a, const float* b, int64_t rows, const int64_t* off, int64_t cols,
                           const int64_t* col, int64_t tail) {
  return gathered_dot(a, b, rows, off, cols, col, tail);
}

int64_t ws_lap_solve(int64_t n, const double* score, int64_t* col4row, double* v, int32_t warm) {
  return solve(n, score, col4row, v, warm);
}

}  // extern "C"
