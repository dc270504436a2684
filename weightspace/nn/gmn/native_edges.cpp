// Fused per-edge kernels of the graph metanetworks, forward and backward, float and double.
//
// Built and called by weightspace/nn/gmn/native.py (plain C ABI through ctypes, built with
// weightspace.native.load_library). The kernels, for every edge i = (s, t) = (src_i, dst_i):
//
//   pair:      out_i = [e_i +] W2 silu(Ps[s] + Pd[t] + W1 LN(e_i) + b1) + b2
//   messages:  y_i = LN(e_i);  a_i = U2 silu(Pa[s] + U1 y_i + c1) + c2   scattered at t,
//                              b_i = V2 silu(Pb[t] + V1 y_i + d1) + d2   scattered at s,
//              as sums, sums of squares, and maxima with the number of edges attaining them;
//   pool:      the readout's y_i = LN(e_i) scattered at the edge's graph (sums, squares, maxima);
//   attention: the relational transformer's sparse attention of both edge directions, with
//              an online softmax per receiver and head (attn_fwd below).
//   encoder:   the edge encoder, out_i = classes[c_i] + W_w [x, sin(a x B_w^T), cos(a x B_w^T)] + b_w
//              for the edge's w values x (divided by its class's rms, itself from class_squares);
//              float sin/cos in vectors (sincos_vec).
//
// Edges run in blocks of BR rows whose activations live in small per-thread buffers (L1/L2):
// nothing per edge is written but the outputs, and backward recomputes the block's activations
// instead of reading stored ones. Threads take contiguous ranges of blocks with private
// accumulators (weight, node and aggregate sums), merged in thread order afterwards.
//
// Matrix products run on register tiles of 4 rows x 2 vectors (of 32 bytes): every output
// width (D, M, O) must be a multiple of 2 vectors, 16 floats or 8 doubles (native.py checks);
// LayerNorm rows run in vectors too.
// The float sigmoid uses a vectorized exp (Cephes' polynomial, relative error < 2e-7); the
// double one std::exp; the attention's exponentials likewise.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>
#ifdef _OPENMP
#include <omp.h>
#endif

namespace {

constexpr int BR = 64;  // edges per block

template <class T> struct Vec;
template <> struct Vec<float> {
  typedef float V __attribute__((vector_size(32)));
  typedef int32_t I __attribute__((vector_size(32)));
  static constexpr int L = 8;
};
template <> struct Vec<double> { typedef double V __attribute__((vector_size(32))); static constexpr int L = 4; };

template <class V, class T> inline V vload(const T* p) { V v; std::memcpy(&v, p, sizeof v); return v; }
template <class V, class T> inline void vstore(T* p, const V& v) { std::memcpy(p, &v, sizeof v); }

// Y (R x J, ldy) += X (R x K, ldx) W (K x J, row-major).
template <class T>
void gemm_acc(const T* X, int64_t ldx, int R, int K, const T* W, int J, T* Y, int64_t ldy) {
  using V = typename Vec<T>::V;
  constexpr int L = Vec<T>::L;
  int r = 0;
  for (; r + 4 <= R; r += 4)
    for (int j = 0; j < J; j += 2 * L) {
      V a[4][2];
      for (int q = 0; q < 4; ++q) {
        a[q][0] = vload<V>(Y + (r + q) * ldy + j);
        a[q][1] = vload<V>(Y + (r + q) * ldy + j + L);
      }
      const T* x = X + r * ldx;
      for (int k = 0; k < K; ++k) {
        const V w0 = vload<V>(W + (int64_t)k * J + j), w1 = vload<V>(W + (int64_t)k * J + j + L);
        for (int q = 0; q < 4; ++q) {
          const T s = x[q * ldx + k];
          a[q][0] += s * w0;
          a[q][1] += s * w1;
        }
      }
      for (int q = 0; q < 4; ++q) {
        vstore(Y + (r + q) * ldy + j, a[q][0]);
        vstore(Y + (r + q) * ldy + j + L, a[q][1]);
      }
    }
  for (; r < R; ++r)
    for (int j = 0; j < J; j += 2 * L) {
      V a0 = vload<V>(Y + r * ldy + j), a1 = vload<V>(Y + r * ldy + j + L);
      const T* x = X + r * ldx;
      for (int k = 0; k < K; ++k) {
        a0 += x[k] * vload<V>(W + (int64_t)k * J + j);
        a1 += x[k] * vload<V>(W + (int64_t)k * J + j + L);
      }
      vstore(Y + r * ldy + j, a0);
      vstore(Y + r * ldy + j + L, a1);
    }
}

// dW (K x J) += X^T G for X (R x K, ldx) and G (R x J, ldg).
template <class T>
void gemm_tn(const T* X, int64_t ldx, int R, int K, const T* G, int64_t ldg, int J, T* dW) {
  using V = typename Vec<T>::V;
  constexpr int L = Vec<T>::L;
  int k = 0;
  for (; k + 4 <= K; k += 4)
    for (int j = 0; j < J; j += 2 * L) {
      V a[4][2];
      for (int q = 0; q < 4; ++q) {
        a[q][0] = vload<V>(dW + (int64_t)(k + q) * J + j);
        a[q][1] = vload<V>(dW + (int64_t)(k + q) * J + j + L);
      }
      for (int r = 0; r < R; ++r) {
        const V g0 = vload<V>(G + r * ldg + j), g1 = vload<V>(G + r * ldg + j + L);
        const T* x = X + r * ldx + k;
        for (int q = 0; q < 4; ++q) {
          a[q][0] += x[q] * g0;
          a[q][1] += x[q] * g1;
        }
      }
      for (int q = 0; q < 4; ++q) {
        vstore(dW + (int64_t)(k + q) * J + j, a[q][0]);
        vstore(dW + (int64_t)(k + q) * J + j + L, a[q][1]);
      }
    }
  for (; k < K; ++k)
    for (int j = 0; j < J; j += 2 * L) {
      V a0 = vload<V>(dW + (int64_t)k * J + j), a1 = vload<V>(dW + (int64_t)k * J + j + L);
      for (int r = 0; r < R; ++r) {
        a0 += X[r * ldx + k] * vload<V>(G + r * ldg + j);
        a1 += X[r * ldx + k] * vload<V>(G + r * ldg + j + L);
      }
      vstore(dW + (int64_t)k * J + j, a0);
      vstore(dW + (int64_t)k * J + j + L, a1);
    }
}

inline Vec<float>::V exp_vec(Vec<float>::V x) {
  using V = Vec<float>::V;
  using I = Vec<float>::I;
  x = x > 88.3762626647949f ? V{} + 88.3762626647949f : x;
  x = x < -88.3762626647949f ? V{} - 88.3762626647949f : x;
  V fx = x * 1.44269504088896341f + 0.5f;
  V tf = __builtin_convertvector(__builtin_convertvector(fx, I), V);
  tf = tf > fx ? tf - 1.0f : tf;  // floor
  x = x - tf * 0.693359375f + tf * 2.12194440e-4f;
  V z = x * x;
  V y = ((((1.9875691500E-4f * x + 1.3981999507E-3f) * x + 8.3334519073E-3f) * x + 4.1665795894E-2f) * x
         + 1.6666665459E-1f) * x + 5.0000001201E-1f;
  y = y * z + x + 1.0f;
  I n = (__builtin_convertvector(tf, I) + 127) << 23;
  V p;
  std::memcpy(&p, &n, sizeof p);
  return y * p;
}

// s = sigmoid(z) over n values (n a multiple of the vector width).
inline void sigmoid(const float* z, float* s, int64_t n) {
  using V = Vec<float>::V;
  for (int64_t i = 0; i < n; i += Vec<float>::L) vstore(s + i, 1.0f / (1.0f + exp_vec(-vload<V>(z + i))));
}

inline void sigmoid(const double* z, double* s, int64_t n) {
  for (int64_t i = 0; i < n; ++i) s[i] = 1.0 / (1.0 + std::exp(-z[i]));
}

// The sum of a vector's lanes, as a tree (log2 L dependent adds).
template <class T>
inline T hsum(const typename Vec<T>::V& v) {
  T a[Vec<T>::L];
  std::memcpy(a, &v, sizeof a);
  for (int w = Vec<T>::L / 2; w >= 1; w /= 2)
    for (int i = 0; i < w; ++i) a[i] += a[i + w];
  return a[0];
}

// y = LN(x) over R rows of width D; keeps xn = (x - mean) * rstd and rstd for backward.
template <class T>
void ln_fwd(const T* x, int R, int D, const T* g, const T* b, T eps, T* xn, T* rstd, T* y) {
  using V = typename Vec<T>::V;
  constexpr int L = Vec<T>::L;
  for (int r = 0; r < R; ++r) {
    const T* xr = x + (int64_t)r * D;
    V acc = V{};
    for (int d = 0; d < D; d += L) acc += vload<V>(xr + d);
    const T mean = hsum<T>(acc) / D;
    acc = V{};
    for (int d = 0; d < D; d += L) {
      const V c = vload<V>(xr + d) - mean;
      acc += c * c;
    }
    const T rs = T(1) / std::sqrt(hsum<T>(acc) / D + eps);
    rstd[r] = rs;
    for (int d = 0; d < D; d += L) {
      const V v = (vload<V>(xr + d) - mean) * rs;
      vstore(xn + r * D + d, v);
      vstore(y + r * D + d, v * vload<V>(g + d) + vload<V>(b + d));
    }
  }
}

// gx = d LN / dx for output gradients gy; accumulates dg, db.
template <class T>
void ln_bwd(const T* gy, const T* xn, const T* rstd, int R, int D, const T* g, T* dg, T* db, T* gx) {
  using V = typename Vec<T>::V;
  constexpr int L = Vec<T>::L;
  for (int r = 0; r < R; ++r) {
    const T* gr = gy + (int64_t)r * D;
    const T* nr = xn + (int64_t)r * D;
    V a1 = V{}, a2 = V{};
    for (int d = 0; d < D; d += L) {
      const V gv = vload<V>(gr + d), nv = vload<V>(nr + d), v = gv * vload<V>(g + d);
      vstore(dg + d, vload<V>(dg + d) + gv * nv);
      vstore(db + d, vload<V>(db + d) + gv);
      a1 += v;
      a2 += v * nv;
    }
    const T m1 = hsum<T>(a1) / D, m2 = hsum<T>(a2) / D;
    for (int d = 0; d < D; d += L) {
      const V nv = vload<V>(nr + d);
      vstore(gx + r * D + d, rstd[r] * (vload<V>(gr + d) * vload<V>(g + d) - m1 - nv * m2));
    }
  }
}

template <class T> struct Norm { const T *g, *b; T eps; };

// One SiLU MLP of two layers on a block: z = P[gather] + W1t-product + b1, s = sigmoid(z),
// a = z s, out = a W2t + b2 (+ res). W1t (D x M), W2t (M x O) are the transposed weights.
template <class T> struct Mlp { const T *W1t, *b1, *W2t, *b2, *W1, *W2; int M, O; };

template <class T>
void mlp_fwd(const Mlp<T>& f, const T* y, int R, int D, const T* P, const int64_t* gather, T* z, T* s, T* a) {
  const int M = f.M;
  for (int r = 0; r < R; ++r)
    for (int m = 0; m < M; ++m) z[r * M + m] = f.b1[m] + P[gather[r] * M + m];
  gemm_acc(y, D, R, D, f.W1t, M, z, M);
  sigmoid(z, s, (int64_t)R * M);
  for (int i = 0; i < R * M; ++i) a[i] = z[i] * s[i];
}

// Backward of mlp_fwd given output gradients go (R x O): accumulates the weight gradients
// (transposed layouts), the node-term gradient at `gather`, and gy += dL/dy.
template <class T>
void mlp_bwd(const Mlp<T>& f, const T* y, int R, int D, const int64_t* gather, const T* z, const T* s, const T* a,
             const T* go, T* ga, T* gW1t, T* gb1, T* gW2t, T* gb2, T* gP, T* gy) {
  const int M = f.M, O = f.O;
  gemm_tn(a, M, R, M, go, O, O, gW2t);
  for (int r = 0; r < R; ++r)
    for (int o = 0; o < O; ++o) gb2[o] += go[r * O + o];
  std::fill(ga, ga + R * M, T(0));
  gemm_acc(go, O, R, O, f.W2, M, ga, M);
  for (int i = 0; i < R * M; ++i) ga[i] *= s[i] * (T(1) + z[i] * (T(1) - s[i]));
  for (int r = 0; r < R; ++r) {
    T* p = gP + gather[r] * M;
    for (int m = 0; m < M; ++m) {
      p[m] += ga[r * M + m];
      gb1[m] += ga[r * M + m];
    }
  }
  gemm_tn(y, D, R, D, ga, M, M, gW1t);
  gemm_acc(ga, M, R, M, f.W1, D, gy, D);
}

// Per-thread accumulators: a list of arrays, private copies beyond thread 0's (the outputs).
template <class T>
struct Accumulators {
  std::vector<T*> out;
  std::vector<int64_t> size;
  std::vector<std::vector<T>> priv;  // [thread - 1], all arrays back to back
  int threads;

  Accumulators(std::vector<T*> o, std::vector<int64_t> n, int th) : out(o), size(n), threads(th) {
    int64_t total = 0;
    for (auto k : size) total += k;
    priv.assign(std::max(th - 1, 0), std::vector<T>(total, T(0)));
  }
  std::vector<T*> of(int t) {
    if (t == 0) return out;
    std::vector<T*> p;
    int64_t off = 0;
    for (auto k : size) {
      p.push_back(priv[t - 1].data() + off);
      off += k;
    }
    return p;
  }
  void reduce() {
    for (int t = 1; t < threads; ++t) {
      auto p = of(t);
      for (size_t i = 0; i < out.size(); ++i)
        for (int64_t j = 0; j < size[i]; ++j) out[i][j] += p[i][j];
    }
  }
};

inline int thread_id() {
#ifdef _OPENMP
  return omp_get_thread_num();
#else
  return 0;
#endif
}

// Blocks [lo, hi) of thread t of `threads` over E edges.
inline void block_range(int64_t E, int t, int threads, int64_t* lo, int64_t* hi) {
  const int64_t nb = (E + BR - 1) / BR;
  *lo = nb * t / threads;
  *hi = nb * (t + 1) / threads;
}

template <class T>
void pair_fwd(int64_t E, int D, int residual, int threads, const T* e, const int64_t* src, const int64_t* dst,
              const T* Ps, const T* Pd, Norm<T> ln, Mlp<T> f, T* out) {
  const int M = f.M, O = f.O;
#pragma omp parallel num_threads(threads)
  {
    std::vector<T> xn(BR * D), rs(BR), y(BR * D), z(BR * M), s(BR * M), a(BR * M);
    int64_t lo, hi;
    block_range(E, thread_id(), threads, &lo, &hi);
    for (int64_t blk = lo; blk < hi; ++blk) {
      const int64_t i0 = blk * BR;
      const int R = (int)std::min<int64_t>(BR, E - i0);
      const T* x = e + i0 * D;
      ln_fwd(x, R, D, ln.g, ln.b, ln.eps, xn.data(), rs.data(), y.data());
      for (int r = 0; r < R; ++r)
        for (int m = 0; m < M; ++m) z[r * M + m] = f.b1[m] + Ps[src[i0 + r] * M + m] + Pd[dst[i0 + r] * M + m];
      gemm_acc(y.data(), D, R, D, f.W1t, M, z.data(), M);
      sigmoid(z.data(), s.data(), (int64_t)R * M);
      for (int i = 0; i < R * M; ++i) a[i] = z[i] * s[i];
      T* o = out + i0 * O;
      for (int r = 0; r < R; ++r)
        for (int k = 0; k < O; ++k) o[r * O + k] = f.b2[k] + (residual ? x[r * D + k] : T(0));
      gemm_acc(a.data(), M, R, M, f.W2t, O, o, O);
    }
  }
}

template <class T>
void pair_bwd(int64_t E, int64_t N, int D, int residual, int threads, const T* e, const int64_t* src,
              const int64_t* dst, const T* Ps, const T* Pd, Norm<T> ln, Mlp<T> f, const T* gout, T* ge, T* gPs,
              T* gPd, T* gg, T* gb, T* gW1t, T* gb1, T* gW2t, T* gb2) {
  const int M = f.M, O = f.O;
  Accumulators<T> acc({gPs, gPd, gg, gb, gW1t, gb1, gW2t, gb2},
                      {N * M, N * M, D, D, (int64_t)D * M, M, (int64_t)M * O, O}, threads);
#pragma omp parallel num_threads(threads)
  {
    const int t = thread_id();
    auto p = acc.of(t);
    std::vector<T> xn(BR * D), rs(BR), y(BR * D), z(BR * M), s(BR * M), a(BR * M), ga(BR * M), gP(BR * M),
        gy(BR * D), gx(BR * D);
    std::vector<int64_t> self(BR);
    for (int r = 0; r < BR; ++r) self[r] = r;
    int64_t lo, hi;
    block_range(E, t, threads, &lo, &hi);
    for (int64_t blk = lo; blk < hi; ++blk) {
      const int64_t i0 = blk * BR;
      const int R = (int)std::min<int64_t>(BR, E - i0);
      const T* x = e + i0 * D;
      const T* go = gout + i0 * O;
      ln_fwd(x, R, D, ln.g, ln.b, ln.eps, xn.data(), rs.data(), y.data());
      for (int r = 0; r < R; ++r)
        for (int m = 0; m < M; ++m) z[r * M + m] = f.b1[m] + Ps[src[i0 + r] * M + m] + Pd[dst[i0 + r] * M + m];
      gemm_acc(y.data(), D, R, D, f.W1t, M, z.data(), M);
      sigmoid(z.data(), s.data(), (int64_t)R * M);
      for (int i = 0; i < R * M; ++i) a[i] = z[i] * s[i];
      std::fill(gP.begin(), gP.end(), T(0));
      std::fill(gy.begin(), gy.begin() + R * D, T(0));
      mlp_bwd(f, y.data(), R, D, self.data(), z.data(), s.data(), a.data(), go, ga.data(), p[4], p[5], p[6], p[7],
              gP.data(), gy.data());
      for (int r = 0; r < R; ++r) {
        T* ps = p[0] + src[i0 + r] * M;
        T* pd = p[1] + dst[i0 + r] * M;
        for (int m = 0; m < M; ++m) {
          ps[m] += gP[r * M + m];
          pd[m] += gP[r * M + m];
        }
      }
      ln_bwd(gy.data(), xn.data(), rs.data(), R, D, ln.g, p[2], p[3], gx.data());
      T* gr = ge + i0 * D;
      for (int i = 0; i < R * D; ++i) gr[i] = gx[i] + (residual ? go[i] : T(0));
    }
  }
  acc.reduce();
}

// Partial aggregates of one direction: sums, squares, maxima and their counts, (N x O) each.
template <class T> struct Aggregates { T *sum, *sq, *max, *cnt; };

template <class T>
inline void scatter(const T* m, int O, int64_t node, Aggregates<T> g) {
  T* su = g.sum + node * O;
  T* sq = g.sq + node * O;
  T* mx = g.max + node * O;
  T* ct = g.cnt + node * O;
  for (int k = 0; k < O; ++k) {
    su[k] += m[k];
    sq[k] += m[k] * m[k];
    if (m[k] > mx[k]) {
      mx[k] = m[k];
      ct[k] = 1;
    } else if (m[k] == mx[k]) {
      ct[k] += 1;
    }
  }
}

template <class T>
void merge(Aggregates<T> into, Aggregates<T> from, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    into.sum[i] += from.sum[i];
    into.sq[i] += from.sq[i];
    if (from.max[i] > into.max[i]) {
      into.max[i] = from.max[i];
      into.cnt[i] = from.cnt[i];
    } else if (from.max[i] == into.max[i]) {
      into.cnt[i] += from.cnt[i];
    }
  }
}

// Gathers and scatter targets of the two directions: "in" reads Pa at src, lands at dst.
template <class T>
void msg_fwd(int64_t E, int64_t N, int D, int threads, const T* e, const int64_t* src, const int64_t* dst,
             const T* Pa, const T* Pb, Norm<T> ln, Mlp<T> fa, Mlp<T> fb, Aggregates<T> ga, Aggregates<T> gb) {
  const int M = fa.M, O = fa.O;
  const int64_t n = N * O;
  std::vector<std::vector<T>> priv(std::max(threads - 1, 0), std::vector<T>(8 * n, T(0)));
  for (auto& v : priv) {
    std::fill(v.begin() + 2 * n, v.begin() + 3 * n, std::numeric_limits<T>::lowest());
    std::fill(v.begin() + 6 * n, v.begin() + 7 * n, std::numeric_limits<T>::lowest());
  }
#pragma omp parallel num_threads(threads)
  {
    const int t = thread_id();
    Aggregates<T> A = ga, B = gb;
    if (t > 0) {
      T* q = priv[t - 1].data();
      A = {q, q + n, q + 2 * n, q + 3 * n};
      B = {q + 4 * n, q + 5 * n, q + 6 * n, q + 7 * n};
    }
    std::vector<T> xn(BR * D), rs(BR), y(BR * D), z(BR * M), s(BR * M), a(BR * M), m(BR * O);
    int64_t lo, hi;
    block_range(E, t, threads, &lo, &hi);
    for (int64_t blk = lo; blk < hi; ++blk) {
      const int64_t i0 = blk * BR;
      const int R = (int)std::min<int64_t>(BR, E - i0);
      ln_fwd(e + i0 * D, R, D, ln.g, ln.b, ln.eps, xn.data(), rs.data(), y.data());
      for (int dir = 0; dir < 2; ++dir) {
        const Mlp<T>& f = dir ? fb : fa;
        const int64_t* gather = (dir ? dst : src) + i0;
        const int64_t* target = (dir ? src : dst) + i0;
        mlp_fwd(f, y.data(), R, D, dir ? Pb : Pa, gather, z.data(), s.data(), a.data());
        for (int r = 0; r < R; ++r)
          for (int k = 0; k < O; ++k) m[r * O + k] = f.b2[k];
        gemm_acc(a.data(), M, R, M, f.W2t, O, m.data(), O);
        for (int r = 0; r < R; ++r) scatter(m.data() + r * O, O, target[r], dir ? B : A);
      }
    }
  }
  for (int t = 1; t < threads; ++t) {
    T* q = priv[t - 1].data();
    merge(ga, Aggregates<T>{q, q + n, q + 2 * n, q + 3 * n}, n);
    merge(gb, Aggregates<T>{q + 4 * n, q + 5 * n, q + 6 * n, q + 7 * n}, n);
  }
}

// Output gradients of one direction's aggregates (N x O each).
template <class T> struct AggGrads { const T *sum, *sq, *max; };

template <class T>
void msg_bwd(int64_t E, int64_t N, int D, int threads, const T* e, const int64_t* src, const int64_t* dst,
             const T* Pa, const T* Pb, Norm<T> ln, Mlp<T> fa, Mlp<T> fb, Aggregates<T> ga, Aggregates<T> gb,
             AggGrads<T> da, AggGrads<T> db, T* ge, T* gPa, T* gPb, T* gg, T* gbeta, T* const* gw) {
  // gw: gW1t, gb1, gW2t, gb2 of fa, then of fb
  const int M = fa.M, O = fa.O;
  Accumulators<T> acc({gPa, gPb, gg, gbeta, gw[0], gw[1], gw[2], gw[3], gw[4], gw[5], gw[6], gw[7]},
                      {N * M, N * M, D, D, (int64_t)D * M, M, (int64_t)M * O, O, (int64_t)D * M, M, (int64_t)M * O, O},
                      threads);
#pragma omp parallel num_threads(threads)
  {
    const int t = thread_id();
    auto p = acc.of(t);
    std::vector<T> xn(BR * D), rs(BR), y(BR * D), z(BR * M), s(BR * M), a(BR * M), m(BR * O), gm(BR * O),
        gz(BR * M), gy(BR * D), gx(BR * D);
    int64_t lo, hi;
    block_range(E, t, threads, &lo, &hi);
    for (int64_t blk = lo; blk < hi; ++blk) {
      const int64_t i0 = blk * BR;
      const int R = (int)std::min<int64_t>(BR, E - i0);
      ln_fwd(e + i0 * D, R, D, ln.g, ln.b, ln.eps, xn.data(), rs.data(), y.data());
      std::fill(gy.begin(), gy.begin() + R * D, T(0));
      for (int dir = 0; dir < 2; ++dir) {
        const Mlp<T>& f = dir ? fb : fa;
        const Aggregates<T>& G = dir ? gb : ga;
        const AggGrads<T>& dG = dir ? db : da;
        const int64_t* gather = (dir ? dst : src) + i0;
        const int64_t* target = (dir ? src : dst) + i0;
        mlp_fwd(f, y.data(), R, D, dir ? Pb : Pa, gather, z.data(), s.data(), a.data());
        for (int r = 0; r < R; ++r)
          for (int k = 0; k < O; ++k) m[r * O + k] = f.b2[k];
        gemm_acc(a.data(), M, R, M, f.W2t, O, m.data(), O);
        for (int r = 0; r < R; ++r) {
          const int64_t node = target[r] * O;
          for (int k = 0; k < O; ++k) {
            const T v = m[r * O + k];
            T g = dG.sum[node + k] + T(2) * v * dG.sq[node + k];
            if (v == G.max[node + k]) g += dG.max[node + k] / G.cnt[node + k];
            gm[r * O + k] = g;
          }
        }
        const int w = dir ? 8 : 4;
        mlp_bwd(f, y.data(), R, D, gather, z.data(), s.data(), a.data(), gm.data(), gz.data(), p[w], p[w + 1],
                p[w + 2], p[w + 3], p[dir ? 1 : 0], gy.data());
      }
      ln_bwd(gy.data(), xn.data(), rs.data(), R, D, ln.g, p[2], p[3], gx.data());
      std::memcpy(ge + i0 * D, gx.data(), sizeof(T) * R * D);
    }
  }
  acc.reduce();
}

template <class T>
Mlp<T> mlp_of(void* const* w, int M, int O) {
  // w: W1t, b1, W2t, b2, W1, W2
  return {(const T*)w[0], (const T*)w[1], (const T*)w[2], (const T*)w[3], (const T*)w[4], (const T*)w[5], M, O};
}

// The invariant readout's edge pooling: y_i = LN(e_i) scattered at graph_i as sums, squares and
// maxima with their counts (Aggregates of G x D).
template <class T>
void pool_fwd(int64_t E, int64_t G, int D, int threads, const T* e, const int64_t* graph, Norm<T> ln,
              Aggregates<T> out) {
  const int64_t n = G * D;
  std::vector<std::vector<T>> priv(std::max(threads - 1, 0), std::vector<T>(4 * n, T(0)));
  for (auto& v : priv) std::fill(v.begin() + 2 * n, v.begin() + 3 * n, std::numeric_limits<T>::lowest());
#pragma omp parallel num_threads(threads)
  {
    const int t = thread_id();
    Aggregates<T> A = out;
    if (t > 0) {
      T* q = priv[t - 1].data();
      A = {q, q + n, q + 2 * n, q + 3 * n};
    }
    std::vector<T> xn(BR * D), rs(BR), y(BR * D);
    int64_t lo, hi;
    block_range(E, t, threads, &lo, &hi);
    for (int64_t blk = lo; blk < hi; ++blk) {
      const int64_t i0 = blk * BR;
      const int R = (int)std::min<int64_t>(BR, E - i0);
      ln_fwd(e + i0 * D, R, D, ln.g, ln.b, ln.eps, xn.data(), rs.data(), y.data());
      for (int r = 0; r < R; ++r) scatter(y.data() + r * D, D, graph[i0 + r], A);
    }
  }
  for (int t = 1; t < threads; ++t) {
    T* q = priv[t - 1].data();
    merge(out, Aggregates<T>{q, q + n, q + 2 * n, q + 3 * n}, n);
  }
}

template <class T>
void pool_bwd(int64_t E, int64_t G, int D, int threads, const T* e, const int64_t* graph, Norm<T> ln,
              Aggregates<T> agg, AggGrads<T> d, T* ge, T* gg, T* gb) {
  Accumulators<T> acc({gg, gb}, {D, D}, threads);
#pragma omp parallel num_threads(threads)
  {
    const int t = thread_id();
    auto p = acc.of(t);
    std::vector<T> xn(BR * D), rs(BR), y(BR * D), gy(BR * D), gx(BR * D);
    int64_t lo, hi;
    block_range(E, t, threads, &lo, &hi);
    for (int64_t blk = lo; blk < hi; ++blk) {
      const int64_t i0 = blk * BR;
      const int R = (int)std::min<int64_t>(BR, E - i0);
      ln_fwd(e + i0 * D, R, D, ln.g, ln.b, ln.eps, xn.data(), rs.data(), y.data());
      for (int r = 0; r < R; ++r) {
        const int64_t node = graph[i0 + r] * D;
        for (int k = 0; k < D; ++k) {
          const T v = y[r * D + k];
          T g = d.sum[node + k] + T(2) * v * d.sq[node + k];
          if (v == agg.max[node + k]) g += d.max[node + k] / agg.cnt[node + k];
          gy[r * D + k] = g;
        }
      }
      ln_bwd(gy.data(), xn.data(), rs.data(), R, D, ln.g, p[0], p[1], gx.data());
      std::memcpy(ge + i0 * D, gx.data(), sizeof(T) * R * D);
    }
  }
  acc.reduce();
}

// One direction of an edge in the attention: qv = q + fq, kv = k + fk, vv = v + fv (f: the
// direction's three blocks of D) and the products qk = qv * kv, all in vectors.
template <class T>
inline void edge_qkv(const T* f, const T* q, const T* k, const T* v, int D, T* qv, T* kv, T* vv, T* qk) {
  using V = typename Vec<T>::V;
  constexpr int L = Vec<T>::L;
  for (int d = 0; d < D; d += L) {
    const V a = vload<V>(q + d) + vload<V>(f + d), b = vload<V>(k + d) + vload<V>(f + D + d);
    vstore(qv + d, a);
    vstore(kv + d, b);
    vstore(qk + d, a * b);
    vstore(vv + d, vload<V>(v + d) + vload<V>(f + 2 * D + d));
  }
}

// x = exp(x) over n values: floats in vectors (exp_vec, lanes beyond n padded), doubles by std::exp.
inline void exp_n(float* x, int n) {
  using V = Vec<float>::V;
  constexpr int L = Vec<float>::L;
  for (int i = 0; i < n; i += L) {
    const int k = std::min(L, n - i);
    V v = V{};
    std::memcpy(&v, x + i, sizeof(float) * k);
    v = exp_vec(v);
    std::memcpy(x + i, &v, sizeof(float) * k);
  }
}

inline void exp_n(double* x, int n) {
  for (int i = 0; i < n; ++i) x[i] = std::exp(x[i]);
}

// out[h] = the sum of x over head h's dh entries, in four independent partial sums.
template <class T>
inline void head_sums(const T* x, int H, int dh, T* out) {
  for (int h = 0; h < H; ++h) {
    const T* p = x + h * dh;
    T a0 = 0, a1 = 0, a2 = 0, a3 = 0;
    int i = 0;
    for (; i + 4 <= dh; i += 4) {
      a0 += p[i];
      a1 += p[i + 1];
      a2 += p[i + 2];
      a3 += p[i + 3];
    }
    for (; i < dh; ++i) a0 += p[i];
    out[h] = (a0 + a1) + (a2 + a3);
  }
}

// Sparse edge-conditioned attention, both directions of every edge (see transformer.py):
// F = LN(e) [Wf; Wb]^T (6 blocks of D: fq fk fv bq bk bv); the forward direction sends from
// src to dst with q = Q[dst] + fq, k = K[src] + fk, v = V[src] + fv, the backward one from dst
// to src with the b blocks. Per receiver and head a softmax over its incoming (edge,
// direction) pairs, accumulated online: o = sum exp(score - m) v / (sum exp(score - m) + 1e-16).
struct Heads { int H, dh; double scale; };

template <class T>
void attn_fwd(int64_t E, int64_t N, int D, int threads, Heads hd, const T* e, const int64_t* src,
              const int64_t* dst, const T* Q, const T* K, const T* Vn, Norm<T> ln, const T* Wt, T* o, T* m, T* z) {
  const int H = hd.H, dh = hd.dh, C = 6 * D;
  const T scale = (T)hd.scale;
  std::vector<std::vector<T>> priv(std::max(threads - 1, 0), std::vector<T>(N * (D + 2 * H), T(0)));
  for (auto& v : priv) std::fill(v.begin() + N * D, v.begin() + N * (D + H), std::numeric_limits<T>::lowest());
#pragma omp parallel num_threads(threads)
  {
    const int t = thread_id();
    T *u = o, *mx = m, *zs = z;
    if (t > 0) {
      u = priv[t - 1].data();
      mx = u + N * D;
      zs = mx + N * H;
    }
    std::vector<T> xn(BR * D), rs(BR), y(BR * D), F(BR * C), qv(D), kv(D), vv(D), qk(D), score(H), ex(H);
    int64_t lo, hi;
    block_range(E, t, threads, &lo, &hi);
    for (int64_t blk = lo; blk < hi; ++blk) {
      const int64_t i0 = blk * BR;
      const int R = (int)std::min<int64_t>(BR, E - i0);
      ln_fwd(e + i0 * D, R, D, ln.g, ln.b, ln.eps, xn.data(), rs.data(), y.data());
      std::fill(F.begin(), F.begin() + R * C, T(0));
      gemm_acc(y.data(), D, R, D, Wt, C, F.data(), C);
      for (int r = 0; r < R; ++r)
        for (int dir = 0; dir < 2; ++dir) {
          const int64_t recv = dir ? src[i0 + r] : dst[i0 + r], send = dir ? dst[i0 + r] : src[i0 + r];
          edge_qkv(F.data() + r * C + dir * 3 * D, Q + recv * D, K + send * D, Vn + send * D, D, qv.data(),
                   kv.data(), vv.data(), qk.data());
          head_sums(qk.data(), H, dh, score.data());
          T* uu = u + recv * D;
          for (int h = 0; h < H; ++h) {  // the exponent of the smaller of score and running maximum
            score[h] *= scale;
            ex[h] = -std::abs(score[h] - mx[recv * H + h]);
          }
          exp_n(ex.data(), H);
          for (int h = 0; h < H; ++h) {
            T& mm = mx[recv * H + h];
            T& zz = zs[recv * H + h];
            if (score[h] > mm) {  // rescale the sums to the new maximum
              zz = zz * ex[h] + T(1);
              for (int d = h * dh; d < (h + 1) * dh; ++d) uu[d] = uu[d] * ex[h] + vv[d];
              mm = score[h];
            } else {
              zz += ex[h];
              for (int d = h * dh; d < (h + 1) * dh; ++d) uu[d] += ex[h] * vv[d];
            }
          }
        }
    }
  }
  for (int th = 1; th < threads; ++th) {
    const T* u = priv[th - 1].data();
    const T *mx = u + N * D, *zs = mx + N * H;
    for (int64_t i = 0; i < N * H; ++i) {
      const T top = std::max(m[i], mx[i]);
      const T a = std::exp(m[i] - top), b = std::exp(mx[i] - top);
      z[i] = z[i] * a + zs[i] * b;
      const int64_t node = i / H, h = i % H;
      for (int d = h * dh; d < (h + 1) * dh; ++d) o[node * D + d] = o[node * D + d] * a + u[node * D + d] * b;
      m[i] = top;
    }
  }
  for (int64_t i = 0; i < N * H; ++i) {
    const int64_t node = i / H, h = i % H;
    for (int d = h * dh; d < (h + 1) * dh; ++d) o[node * D + d] /= z[i] + T(1e-16);
  }
}

template <class T>
void attn_bwd(int64_t E, int64_t N, int D, int threads, Heads hd, const T* e, const int64_t* src,
              const int64_t* dst, const T* Q, const T* K, const T* Vn, Norm<T> ln, const T* Wt, const T* W,
              const T* o, const T* m, const T* z, const T* go, T* ge, T* gQ, T* gK, T* gV, T* gg, T* gb, T* gWt) {
  const int H = hd.H, dh = hd.dh, C = 6 * D;
  const T scale = (T)hd.scale;
  std::vector<T> inv(N * H), c(N * H);  // 1 / (z + 1e-16) and <go, o> per receiver and head
  for (int64_t i = 0; i < N * H; ++i) {
    const int64_t node = i / H, h = i % H;
    inv[i] = T(1) / (z[i] + T(1e-16));
    T acc = 0;
    for (int d = h * dh; d < (h + 1) * dh; ++d) acc += go[node * D + d] * o[node * D + d];
    c[i] = acc;
  }
  Accumulators<T> acc({gQ, gK, gV, gg, gb, gWt}, {N * D, N * D, N * D, D, D, (int64_t)D * C}, threads);
#pragma omp parallel num_threads(threads)
  {
    const int t = thread_id();
    auto p = acc.of(t);
    std::vector<T> xn(BR * D), rs(BR), y(BR * D), F(BR * C), G(BR * C), gy(BR * D), gx(BR * D), qv(D), kv(D),
        vv(D), qk(D), score(H), da(H), alpha(H);
    int64_t lo, hi;
    block_range(E, t, threads, &lo, &hi);
    for (int64_t blk = lo; blk < hi; ++blk) {
      const int64_t i0 = blk * BR;
      const int R = (int)std::min<int64_t>(BR, E - i0);
      ln_fwd(e + i0 * D, R, D, ln.g, ln.b, ln.eps, xn.data(), rs.data(), y.data());
      std::fill(F.begin(), F.begin() + R * C, T(0));
      gemm_acc(y.data(), D, R, D, Wt, C, F.data(), C);
      for (int r = 0; r < R; ++r)
        for (int dir = 0; dir < 2; ++dir) {
          const int64_t recv = dir ? src[i0 + r] : dst[i0 + r], send = dir ? dst[i0 + r] : src[i0 + r];
          T* gf = G.data() + r * C + dir * 3 * D;
          const T* g = go + recv * D;
          T *gq = p[0] + recv * D, *gk = p[1] + send * D, *gv = p[2] + send * D;
          edge_qkv(F.data() + r * C + dir * 3 * D, Q + recv * D, K + send * D, Vn + send * D, D, qv.data(),
                   kv.data(), vv.data(), qk.data());
          head_sums(qk.data(), H, dh, score.data());
          for (int d = 0; d < D; ++d) qk[d] = g[d] * vv[d];
          head_sums(qk.data(), H, dh, da.data());
          for (int h = 0; h < H; ++h) alpha[h] = score[h] * scale - m[recv * H + h];
          exp_n(alpha.data(), H);
          for (int h = 0; h < H; ++h) {
            const T a = alpha[h] * inv[recv * H + h];
            const T ds = a * (da[h] - c[recv * H + h]) * scale;
            for (int d = h * dh; d < (h + 1) * dh; ++d) {
              const T dq = ds * kv[d], dk = ds * qv[d], dv = a * g[d];
              gq[d] += dq;
              gk[d] += dk;
              gv[d] += dv;
              gf[d] = dq;
              gf[D + d] = dk;
              gf[2 * D + d] = dv;
            }
          }
        }
      gemm_tn(y.data(), D, R, D, G.data(), C, C, p[5]);
      std::fill(gy.begin(), gy.begin() + R * D, T(0));
      gemm_acc(G.data(), C, R, C, W, D, gy.data(), D);
      ln_bwd(gy.data(), xn.data(), rs.data(), R, D, ln.g, p[3], p[4], gx.data());
      std::memcpy(ge + i0 * D, gx.data(), sizeof(T) * R * D);
    }
  }
  acc.reduce();
}

// sin and cos of 8 float angles: Cephes' sinf/cosf (reduction by pi/4 in three parts, minimax
// polynomials; error < 1e-7 for |x| <= 8192), lanes beyond that range through std::sin/cos.
inline void sincos_vec(Vec<float>::V x, Vec<float>::V* sn, Vec<float>::V* cs) {
  using V = Vec<float>::V;
  using I = Vec<float>::I;
  const V ax = x < 0.0f ? -x : x;
  bool big = false;
  for (int i = 0; i < Vec<float>::L; ++i) big |= !(ax[i] <= 8192.0f);
  if (big) {
    for (int i = 0; i < Vec<float>::L; ++i) {
      (*sn)[i] = std::sin(x[i]);
      (*cs)[i] = std::cos(x[i]);
    }
    return;
  }
  I j = __builtin_convertvector(ax * 1.27323954473516f, I);
  j = (j + 1) & ~1;
  const V y = __builtin_convertvector(j, V);
  const V z = ((ax - y * 0.78515625f) - y * 2.4187564849853515625e-4f) - y * 3.77489497744594108e-8f;
  j = j & 7;
  const V zz = z * z;
  const V pc = ((2.443315711809948e-5f * zz - 1.388731625493765e-3f) * zz + 4.166664568298827e-2f) * zz * zz
               - 0.5f * zz + 1.0f;
  const V ps = ((-1.9515295891e-4f * zz + 8.3321608736e-3f) * zz - 1.6666654611e-1f) * zz * z + z;
  const I even = (j == 0) | (j == 4);
  const V s = even ? ps : pc, c = even ? pc : ps;
  *sn = ((j >= 4) ^ (x < 0.0f)) ? -s : s;
  *cs = ((j == 2) | (j == 4)) ? -c : c;
}

inline void sincos(const float* a, float* s, float* c, int64_t n) {
  using V = Vec<float>::V;
  int64_t i = 0;
  for (; i + Vec<float>::L <= n; i += Vec<float>::L) {
    V vs, vc;
    sincos_vec(vload<V>(a + i), &vs, &vc);
    vstore(s + i, vs);
    vstore(c + i, vc);
  }
  for (; i < n; ++i) {
    s[i] = std::sin(a[i]);
    c[i] = std::cos(a[i]);
  }
}

inline void sincos(const double* a, double* s, double* c, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    s[i] = std::sin(a[i]);
    c[i] = std::cos(a[i]);
  }
}

// One width bucket of the edge encoder: its n edges `ids`, frequencies B (F x w) with their factor
// `angular`, and projection Wt (K x D, K = w + 2F, transposed), b (D).
template <class T> struct Width { int w, F; int64_t n; const int64_t* ids; const T *B, *Wt, *b; T angular; };

// Inputs shared by the buckets: values, each edge's value offset and class, the classes' rms.
template <class T> struct Values { const T* val; const int64_t *off, *cls; const T* rms; };

// x (R x K) = [v, sin(A v B^T), cos(A v B^T)] for v = the values of edges ids[i0 .. i0 + R) / rms.
template <class T>
void fourier_block(const Width<T>& f, const Values<T>& in, int64_t i0, int R, T* ang, T* sn, T* cs, T* x) {
  const int w = f.w, F = f.F, K = w + 2 * F;
  for (int r = 0; r < R; ++r) {
    const int64_t id = f.ids[i0 + r];
    const T* v = in.val + in.off[id];
    const T sc = in.rms[in.cls[id]];
    T* xr = x + (int64_t)r * K;
    for (int j = 0; j < w; ++j) xr[j] = v[j] / sc;
    for (int q = 0; q < F; ++q) {
      T a = 0;
      for (int j = 0; j < w; ++j) a += (f.angular * xr[j]) * f.B[q * w + j];
      ang[r * F + q] = a;
    }
  }
  sincos(ang, sn, cs, (int64_t)R * F);
  for (int r = 0; r < R; ++r) {
    std::memcpy(x + (int64_t)r * K + w, sn + r * F, sizeof(T) * F);
    std::memcpy(x + (int64_t)r * K + w + F, cs + r * F, sizeof(T) * F);
  }
}

template <class T>
void encode_fwd(int64_t E, int D, int threads, const T* classes, Values<T> in, const std::vector<Width<T>>& ws,
                T* out) {
  int K = 0, F = 0;
  for (const auto& f : ws) {
    K = std::max(K, f.w + 2 * f.F);
    F = std::max(F, f.F);
  }
#pragma omp parallel num_threads(threads)
  {
    const int t = thread_id();
    int64_t lo, hi;
    block_range(E, t, threads, &lo, &hi);
    for (int64_t i = lo * BR; i < std::min(E, hi * BR); ++i)
      std::memcpy(out + i * D, classes + in.cls[i] * D, sizeof(T) * D);
#pragma omp barrier
    std::vector<T> ang(BR * F), sn(BR * F), cs(BR * F), x(BR * K), y(BR * D);
    for (const auto& f : ws) {
      block_range(f.n, t, threads, &lo, &hi);
      for (int64_t blk = lo; blk < hi; ++blk) {
        const int64_t i0 = blk * BR;
        const int R = (int)std::min<int64_t>(BR, f.n - i0), Kw = f.w + 2 * f.F;
        fourier_block(f, in, i0, R, ang.data(), sn.data(), cs.data(), x.data());
        for (int r = 0; r < R; ++r) std::memcpy(y.data() + r * D, f.b, sizeof(T) * D);
        gemm_acc(x.data(), Kw, R, Kw, f.Wt, D, y.data(), D);
        for (int r = 0; r < R; ++r) {
          T* o = out + f.ids[i0 + r] * D;
          for (int d = 0; d < D; ++d) o[d] += y[r * D + d];
        }
      }
    }
  }
}

// gW: per bucket gWt (K x D) then gb (D).
template <class T>
void encode_bwd(int64_t E, int64_t C, int D, int threads, Values<T> in, const std::vector<Width<T>>& ws,
                const T* G, T* gclasses, T* const* gw) {
  int K = 0, F = 0;
  std::vector<T*> outs{gclasses};
  std::vector<int64_t> sizes{C * D};
  for (size_t i = 0; i < ws.size(); ++i) {
    const int Kw = ws[i].w + 2 * ws[i].F;
    K = std::max(K, Kw);
    F = std::max(F, ws[i].F);
    outs.push_back(gw[2 * i]);
    outs.push_back(gw[2 * i + 1]);
    sizes.push_back((int64_t)Kw * D);
    sizes.push_back(D);
  }
  Accumulators<T> acc(outs, sizes, threads);
#pragma omp parallel num_threads(threads)
  {
    const int t = thread_id();
    auto p = acc.of(t);
    int64_t lo, hi;
    block_range(E, t, threads, &lo, &hi);
    for (int64_t i = lo * BR; i < std::min(E, hi * BR); ++i) {
      T* gc = p[0] + in.cls[i] * D;
      for (int d = 0; d < D; ++d) gc[d] += G[i * D + d];
    }
    std::vector<T> ang(BR * F), sn(BR * F), cs(BR * F), x(BR * K), g(BR * D);
    for (size_t k = 0; k < ws.size(); ++k) {
      const auto& f = ws[k];
      T *gWt = p[1 + 2 * k], *gb = p[2 + 2 * k];
      block_range(f.n, t, threads, &lo, &hi);
      for (int64_t blk = lo; blk < hi; ++blk) {
        const int64_t i0 = blk * BR;
        const int R = (int)std::min<int64_t>(BR, f.n - i0), Kw = f.w + 2 * f.F;
        fourier_block(f, in, i0, R, ang.data(), sn.data(), cs.data(), x.data());
        for (int r = 0; r < R; ++r) {
          const T* gr = G + f.ids[i0 + r] * D;
          std::memcpy(g.data() + r * D, gr, sizeof(T) * D);
          for (int d = 0; d < D; ++d) gb[d] += gr[d];
        }
        gemm_tn(x.data(), Kw, R, Kw, g.data(), D, D, gWt);
      }
    }
  }
  acc.reduce();
}

// Per edge class c: the sum of squares of its edges' values, and the class's width per edge summed
// (EdgeEncoder.class_rms).
template <class T>
void class_squares(int64_t E, int64_t C, int threads, const T* val, const int64_t* off, const int64_t* width,
                   const int64_t* cls, const int64_t* cwidth, T* sq, T* count) {
  Accumulators<T> acc({sq, count}, {C, C}, threads);
#pragma omp parallel num_threads(threads)
  {
    const int t = thread_id();
    auto p = acc.of(t);
    int64_t lo, hi;
    block_range(E, t, threads, &lo, &hi);
    for (int64_t i = lo * BR; i < std::min(E, hi * BR); ++i) {
      const T* v = val + off[i];
      T s = 0;
      for (int64_t j = 0; j < width[i]; ++j) s += v[j] * v[j];
      p[0][cls[i]] += s;
      p[1][cls[i]] += (T)cwidth[cls[i]];
    }
  }
  acc.reduce();
}

template <class T>
std::vector<Width<T>> widths_of(const int64_t* ints, const double* angular, void* const* ptrs) {
  // ints: count, then per bucket w, F, n; ptrs: per bucket ids, B, Wt, b
  std::vector<Width<T>> ws;
  for (int64_t i = 0; i < ints[0]; ++i)
    ws.push_back({(int)ints[1 + 3 * i], (int)ints[2 + 3 * i], ints[3 + 3 * i], (const int64_t*)ptrs[4 * i],
                  (const T*)ptrs[4 * i + 1], (const T*)ptrs[4 * i + 2], (const T*)ptrs[4 * i + 3], (T)angular[i]});
  return ws;
}

}  // namespace

extern "C" {

// ints: dtype (0 float, 1 double), E, N, D, M, O, residual, threads.
// ptrs: e, src, dst, Ps, Pd, ln_g, ln_b, W1t, b1, W2t, b2, W1, W2, out.
void ws_gmn_pair_fwd(const int64_t* ints, double eps, void* const* ptrs) {
  const int64_t E = ints[1];
  const int D = (int)ints[3], M = (int)ints[4], O = (int)ints[5], residual = (int)ints[6], th = (int)ints[7];
  auto src = (const int64_t*)ptrs[1], dst = (const int64_t*)ptrs[2];
  if (ints[0] == 0)
    pair_fwd<float>(E, D, residual, th, (const float*)ptrs[0], src, dst, (const float*)ptrs[3], (const float*)ptrs[4],
                    {(const float*)ptrs[5], (const float*)ptrs[6], (float)eps}, mlp_of<float>(ptrs + 7, M, O),
                    (float*)ptrs[13]);
  else
    pair_fwd<double>(E, D, residual, th, (const double*)ptrs[0], src, dst, (const double*)ptrs[3],
                     (const double*)ptrs[4], {(const double*)ptrs[5], (const double*)ptrs[6], eps},
                     mlp_of<double>(ptrs + 7, M, O), (double*)ptrs[13]);
}

// ptrs: as ws_gmn_pair_fwd up to W2, then gout, ge, gPs, gPd, g_ln_g, g_ln_b, gW1t, gb1, gW2t, gb2.
void ws_gmn_pair_bwd(const int64_t* ints, double eps, void* const* ptrs) {
  const int64_t E = ints[1], N = ints[2];
  const int D = (int)ints[3], M = (int)ints[4], O = (int)ints[5], residual = (int)ints[6], th = (int)ints[7];
  auto src = (const int64_t*)ptrs[1], dst = (const int64_t*)ptrs[2];
#define WS_PAIR_BWD(T, EPS)                                                                                      \
  pair_bwd<T>(E, N, D, residual, th, (const T*)ptrs[0], src, dst, (const T*)ptrs[3], (const T*)ptrs[4],         \
              {(const T*)ptrs[5], (const T*)ptrs[6], (T)(EPS)}, mlp_of<T>(ptrs + 7, M, O), (const T*)ptrs[13], \
              (T*)ptrs[14], (T*)ptrs[15], (T*)ptrs[16], (T*)ptrs[17], (T*)ptrs[18], (T*)ptrs[19], (T*)ptrs[20], \
              (T*)ptrs[21], (T*)ptrs[22])
  if (ints[0] == 0)
    WS_PAIR_BWD(float, eps);
  else
    WS_PAIR_BWD(double, eps);
#undef WS_PAIR_BWD
}

// ints: dtype, E, N, D, M, O, 0, threads.
// ptrs: e, src, dst, Pa, Pb, ln_g, ln_b, [W1t, b1, W2t, b2, W1, W2] of a, the same of b (7..18),
// then sum, sq, max, cnt of a (19..22) and of b (23..26).
void ws_gmn_msg_fwd(const int64_t* ints, double eps, void* const* ptrs) {
  const int64_t E = ints[1], N = ints[2];
  const int D = (int)ints[3], M = (int)ints[4], O = (int)ints[5], th = (int)ints[7];
  auto src = (const int64_t*)ptrs[1], dst = (const int64_t*)ptrs[2];
#define WS_MSG_FWD(T)                                                                                             \
  msg_fwd<T>(E, N, D, th, (const T*)ptrs[0], src, dst, (const T*)ptrs[3], (const T*)ptrs[4],                     \
             {(const T*)ptrs[5], (const T*)ptrs[6], (T)eps}, mlp_of<T>(ptrs + 7, M, O), mlp_of<T>(ptrs + 13, M, O), \
             {(T*)ptrs[19], (T*)ptrs[20], (T*)ptrs[21], (T*)ptrs[22]},                                            \
             {(T*)ptrs[23], (T*)ptrs[24], (T*)ptrs[25], (T*)ptrs[26]})
  if (ints[0] == 0)
    WS_MSG_FWD(float);
  else
    WS_MSG_FWD(double);
#undef WS_MSG_FWD
}

// ptrs: as ws_gmn_msg_fwd (0..26, the aggregates as computed there), then the output gradients
// sum, sq, max of a (27..29) and of b (30..32), then ge, gPa, gPb, g_ln_g, g_ln_b (33..37),
// gW1t, gb1, gW2t, gb2 of a (38..41) and of b (42..45).
void ws_gmn_msg_bwd(const int64_t* ints, double eps, void* const* ptrs) {
  const int64_t E = ints[1], N = ints[2];
  const int D = (int)ints[3], M = (int)ints[4], O = (int)ints[5], th = (int)ints[7];
  auto src = (const int64_t*)ptrs[1], dst = (const int64_t*)ptrs[2];
#define WS_MSG_BWD(T)                                                                                             \
  msg_bwd<T>(E, N, D, th, (const T*)ptrs[0], src, dst, (const T*)ptrs[3], (const T*)ptrs[4],                     \
             {(const T*)ptrs[5], (const T*)ptrs[6], (T)eps}, mlp_of<T>(ptrs + 7, M, O), mlp_of<T>(ptrs + 13, M, O), \
             {(T*)ptrs[19], (T*)ptrs[20], (T*)ptrs[21], (T*)ptrs[22]},                                            \
             {(T*)ptrs[23], (T*)ptrs[24], (T*)ptrs[25], (T*)ptrs[26]},                                            \
             {(const T*)ptrs[27], (const T*)ptrs[28], (const T*)ptrs[29]},                                        \
             {(const T*)ptrs[30], (const T*)ptrs[31], (const T*)ptrs[32]}, (T*)ptrs[33], (T*)ptrs[34],            \
             (T*)ptrs[35], (T*)ptrs[36], (T*)ptrs[37], (T* const*)(ptrs + 38))
  if (ints[0] == 0)
    WS_MSG_BWD(float);
  else
    WS_MSG_BWD(double);
#undef WS_MSG_BWD
}

// ints: dtype, E, G, D, 0, 0, 0, threads. ptrs: e, graph, ln_g, ln_b, sum, sq, max, cnt.
void ws_gmn_pool_fwd(const int64_t* ints, double eps, void* const* ptrs) {
  const int64_t E = ints[1], G = ints[2];
  const int D = (int)ints[3], th = (int)ints[7];
#define WS_POOL_FWD(T)                                                                                 \
  pool_fwd<T>(E, G, D, th, (const T*)ptrs[0], (const int64_t*)ptrs[1], {(const T*)ptrs[2], (const T*)ptrs[3], \
              (T)eps}, {(T*)ptrs[4], (T*)ptrs[5], (T*)ptrs[6], (T*)ptrs[7]})
  if (ints[0] == 0)
    WS_POOL_FWD(float);
  else
    WS_POOL_FWD(double);
#undef WS_POOL_FWD
}

// ptrs: as ws_gmn_pool_fwd (0..7), then the gradients of sum, sq, max (8..10), then ge, g_ln_g, g_ln_b.
void ws_gmn_pool_bwd(const int64_t* ints, double eps, void* const* ptrs) {
  const int64_t E = ints[1], G = ints[2];
  const int D = (int)ints[3], th = (int)ints[7];
#define WS_POOL_BWD(T)                                                                                 \
  pool_bwd<T>(E, G, D, th, (const T*)ptrs[0], (const int64_t*)ptrs[1], {(const T*)ptrs[2], (const T*)ptrs[3], \
              (T)eps}, {(T*)ptrs[4], (T*)ptrs[5], (T*)ptrs[6], (T*)ptrs[7]},                              \
              {(const T*)ptrs[8], (const T*)ptrs[9], (const T*)ptrs[10]}, (T*)ptrs[11], (T*)ptrs[12], (T*)ptrs[13])
  if (ints[0] == 0)
    WS_POOL_BWD(float);
  else
    WS_POOL_BWD(double);
#undef WS_POOL_BWD
}

// ints: dtype, E, N, D, heads, threads; reals: eps, 1 / sqrt(head size).
// ptrs: e, src, dst, Q, K, V, ln_g, ln_b, Wt (D x 6D), W (6D x D), o, m, z (outputs of the forward).
void ws_gmn_attn_fwd(const int64_t* ints, const double* reals, void* const* ptrs) {
  const int64_t E = ints[1], N = ints[2];
  const int D = (int)ints[3], H = (int)ints[4], th = (int)ints[5];
  const Heads hd{H, D / H, reals[1]};
  auto src = (const int64_t*)ptrs[1], dst = (const int64_t*)ptrs[2];
#define WS_ATTN_FWD(T)                                                                                            \
  attn_fwd<T>(E, N, D, th, hd, (const T*)ptrs[0], src, dst, (const T*)ptrs[3], (const T*)ptrs[4],                \
              (const T*)ptrs[5], {(const T*)ptrs[6], (const T*)ptrs[7], (T)reals[0]}, (const T*)ptrs[8],         \
              (T*)ptrs[10], (T*)ptrs[11], (T*)ptrs[12])
  if (ints[0] == 0)
    WS_ATTN_FWD(float);
  else
    WS_ATTN_FWD(double);
#undef WS_ATTN_FWD
}

// ptrs: as ws_gmn_attn_fwd (0..12), then go, ge, gQ, gK, gV, g_ln_g, g_ln_b, gWt (13..20).
void ws_gmn_attn_bwd(const int64_t* ints, const double* reals, void* const* ptrs) {
  const int64_t E = ints[1], N = ints[2];
  const int D = (int)ints[3], H = (int)ints[4], th = (int)ints[5];
  const Heads hd{H, D / H, reals[1]};
  auto src = (const int64_t*)ptrs[1], dst = (const int64_t*)ptrs[2];
#define WS_ATTN_BWD(T)                                                                                            \
  attn_bwd<T>(E, N, D, th, hd, (const T*)ptrs[0], src, dst, (const T*)ptrs[3], (const T*)ptrs[4],                \
              (const T*)ptrs[5], {(const T*)ptrs[6], (const T*)ptrs[7], (T)reals[0]}, (const T*)ptrs[8],         \
              (const T*)ptrs[9], (const T*)ptrs[10], (const T*)ptrs[11], (const T*)ptrs[12], (const T*)ptrs[13], \
              (T*)ptrs[14], (T*)ptrs[15], (T*)ptrs[16], (T*)ptrs[17], (T*)ptrs[18], (T*)ptrs[19], (T*)ptrs[20])
  if (ints[0] == 0)
    WS_ATTN_BWD(float);
  else
    WS_ATTN_BWD(double);
#undef WS_ATTN_BWD
}

// ints: dtype, E, C, D, threads, buckets, then per bucket w, F, n; reals: per bucket the angular factor.
// ptrs: val, off, cls, rms, classes (C x D), out (E x D), then per bucket ids, B, Wt, b.
void ws_gmn_enc_fwd(const int64_t* ints, const double* angular, void* const* ptrs) {
  const int64_t E = ints[1];
  const int D = (int)ints[3], th = (int)ints[4];
  auto off = (const int64_t*)ptrs[1], cls = (const int64_t*)ptrs[2];
#define WS_ENC_FWD(T)                                                                                    \
  encode_fwd<T>(E, D, th, (const T*)ptrs[4], {(const T*)ptrs[0], off, cls, (const T*)ptrs[3]},             \
                widths_of<T>(ints + 5, angular, ptrs + 6), (T*)ptrs[5])
  if (ints[0] == 0)
    WS_ENC_FWD(float);
  else
    WS_ENC_FWD(double);
#undef WS_ENC_FWD
}

// ptrs: val, off, cls, rms, grad (E x D), g_classes (C x D), then per bucket ids, B, Wt, b, then per
// bucket gWt (K x D), gb.
void ws_gmn_enc_bwd(const int64_t* ints, const double* angular, void* const* ptrs) {
  const int64_t E = ints[1], C = ints[2], nb = ints[5];
  const int D = (int)ints[3], th = (int)ints[4];
  auto off = (const int64_t*)ptrs[1], cls = (const int64_t*)ptrs[2];
#define WS_ENC_BWD(T)                                                                                         \
  encode_bwd<T>(E, C, D, th, {(const T*)ptrs[0], off, cls, (const T*)ptrs[3]},                               \
                widths_of<T>(ints + 5, angular, ptrs + 6), (const T*)ptrs[4], (T*)ptrs[5], (T* const*)(ptrs + 6 + 4 * nb))
  if (ints[0] == 0)
    WS_ENC_BWD(float);
  else
    WS_ENC_BWD(double);
#undef WS_ENC_BWD
}

// ints: dtype, E, C, threads. ptrs: val, off, width, cls, class width (C), sq (C), count (C), zeroed.
void ws_gmn_class_squares(const int64_t* ints, double, void* const* ptrs) {
  auto off = (const int64_t*)ptrs[1], width = (const int64_t*)ptrs[2], cls = (const int64_t*)ptrs[3],
       cwidth = (const int64_t*)ptrs[4];
  if (ints[0] == 0)
    class_squares<float>(ints[1], ints[2], (int)ints[3], (const float*)ptrs[0], off, width, cls, cwidth,
                         (float*)ptrs[5], (float*)ptrs[6]);
  else
    class_squares<double>(ints[1], ints[2], (int)ints[3], (const double*)ptrs[0], off, width, cls, cwidth,
                          (double*)ptrs[5], (double*)ptrs[6]);
}

}  // extern "C"
