// Fused SIREN fitter: every Adam step of one network (forward, hand-written backward, update) in one
// pass over its pixels, in blocks whose activations never leave the L1/L2 cache.
//
// One network is fitted by one thread from start to end, so its result does not depend on the thread
// count or on which other networks share the call (zoo shards keep their bytes). Networks are spread
// over OpenMP threads (dynamic schedule: early stops make the work uneven), each thread flushing
// denormals itself. Float32 and float64, widths (d, h1, ..., hk, out) with d in {1, 2} (coordinates on a
// grid given by its axes, row-major), k >= 1 and every hidden width a multiple of 8; the maths is
// `zoo.siren.mse_and_grads` followed by `zoo.adam.BatchedAdam.step`:
//   h1 = sin(w0 (x W1^T + b1)) from angle addition over the axes (sin/cos per axis value, not per pixel),
//   h_l = sin(w0 (h_{l-1} W_l^T + b_l)): matmul, bias, sin and cos in one register tile,
//   y = h_k W^T + b, loss = mean (y - t)^2, backward: g_l = w0 cos(z_l) (g_{l+1} W_{l+1}) fused the same way.
// sin and cos share one Cody-Waite reduction and Cephes' polynomials (float: < 2 ulp on the reduced
// range; double: < 1e-15).
#include <cmath>
#include <cstdint>
#include <cstring>
#include <algorithm>
#include <vector>
#if defined(__x86_64__) || defined(__i386__)
#include <xmmintrin.h>
#endif

namespace {

constexpr int BLOCK = 48;  // pixels per block: a block's activations of two 32-wide layers stay in L1

template <class T> struct Simd;
template <> struct Simd<float> {
  typedef float V __attribute__((vector_size(32)));
  typedef uint32_t U __attribute__((vector_size(32)));
  static constexpr int L = 8;
};
template <> struct Simd<double> {
  typedef double V __attribute__((vector_size(32)));
  typedef uint64_t U __attribute__((vector_size(32)));
  static constexpr int L = 4;
};

template <class V, class T> inline V load(const T* p) { V v; std::memcpy(&v, p, sizeof(V)); return v; }
template <class V, class T> inline void store(T* p, V v) { std::memcpy(p, &v, sizeof(V)); }

// sin and cos of x: x = q pi/2 + r with |r| <= pi/4 (q by the round-to-integer magic constant, r by a
// three-part Cody-Waite product), polynomials on r, quadrant swap and signs from q's low bits.
inline void sincos(Simd<float>::V x, Simd<float>::V& s, Simd<float>::V& c) {
  typedef Simd<float>::V V;
  typedef Simd<float>::U U;
  const V t = x * 0.636619772367581343f + 12582912.0f;  // 1.5 * 2^23: q sits in the low mantissa bits
  const V q = t - 12582912.0f;
  const U qi = (U)t;
  V r = x - q * 1.5703125f;
  r = r - q * 4.837512969970703125e-4f;
  r = r - q * 7.54978995489188216e-8f;
  const V z = r * r;
  const V sr = r + r * z * (-1.6666654611e-1f + z * (8.3321608736e-3f + z * -1.9515295891e-4f));
  const V cr = 1.0f - 0.5f * z + z * z * (4.166664568298827e-2f + z * (-1.388731625493765e-3f + z * 2.443315711809948e-5f));
  const auto odd = (qi & 1u) != 0u;
  const V a = odd ? cr : sr, b = odd ? sr : cr;
  s = (V)((U)a ^ ((qi & 2u) << 30));
  c = (V)((U)b ^ (((qi + 1u) & 2u) << 30));
}

inline void sincos(Simd<double>::V x, Simd<double>::V& s, Simd<double>::V& c) {
  typedef Simd<double>::V V;
  typedef Simd<double>::U U;
  const V t = x * 0.63661977236758134308 + 6755399441055744.0;  // 1.5 * 2^52
  const V q = t - 6755399441055744.0;
  const U qi = (U)t;
  V r = x - q * 1.57079625129699707031;
  r = r - q * 7.54978941586159635336e-8;
  r = r - q * 5.39030285815811905290e-15;
  const V z = r * r;
  const V ps = ((((1.58962301576546568060e-10 * z - 2.50507477628578072866e-8) * z + 2.75573136213857245213e-6) * z
                 - 1.98412698295895385996e-4) * z + 8.33333333332211858878e-3) * z - 1.66666666666666307295e-1;
  const V pc = ((((-1.13585365213876817300e-11 * z + 2.08757008419747316778e-9) * z - 2.75573141792967388112e-7) * z
                 + 2.48015872888517045348e-5) * z - 1.38888888888730564116e-3) * z + 4.16666666666665929218e-2;
  const V sr = r + r * z * ps;
  const V cr = 1.0 - 0.5 * z + z * z * pc;
  const auto odd = (qi & 1ul) != 0ul;
  const V a = odd ? cr : sr, b = odd ? sr : cr;
  s = (V)((U)a ^ ((qi & 2ul) << 62));
  c = (V)((U)b ^ (((qi + 1ul) & 2ul) << 62));
}

// C[rows x N] = A[rows x K] B[K x N] (row-major), each R x NV-vector register tile handed to
// epi(row, column, value) instead of being stored.
template <class T, int R, int NV, class Epi>
inline void tile_ab(const T* A, int lda, const T* B, int ldb, int K, int row, int col, Epi& epi) {
  typedef typename Simd<T>::V V;
  constexpr int L = Simd<T>::L;
  V acc[R][NV] = {};
  for (int k = 0; k < K; ++k) {
    V b[NV];
    for (int v = 0; v < NV; ++v) b[v] = load<V>(B + k * ldb + col + v * L);
    for (int r = 0; r < R; ++r) {
      const T a = A[(row + r) * lda + k];
      for (int v = 0; v < NV; ++v) acc[r][v] += a * b[v];
    }
  }
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < NV; ++v) epi(row + r, col + v * L, acc[r][v]);
}

template <class T, int NV, class Epi>
inline void rows_ab(const T* A, int lda, const T* B, int ldb, int rows, int K, int col, Epi& epi) {
  constexpr int R = NV >= 4 ? 3 : 4;
  int row = 0;
  for (; row + R <= rows; row += R) tile_ab<T, R, NV>(A, lda, B, ldb, K, row, col, epi);
  for (; row < rows; ++row) tile_ab<T, 1, NV>(A, lda, B, ldb, K, row, col, epi);
}

template <class T, class Epi>
void matmul(const T* A, int lda, const T* B, int ldb, int rows, int K, int N, Epi epi) {
  constexpr int L = Simd<T>::L, NV = 32 / L;  // 32 columns per tile
  int col = 0;
  for (; col + NV * L <= N; col += NV * L) rows_ab<T, NV>(A, lda, B, ldb, rows, K, col, epi);
  for (; col < N; col += L) rows_ab<T, 1>(A, lda, B, ldb, rows, K, col, epi);
}

// W[M x N] += G[rows x M]^T H[rows x N]: the weight gradient of one block, R rows of W x NV vectors per tile.
template <class T, int R, int NV>
inline void tile_atb(const T* G, int ldg, const T* H, int ldh, int rows, T* W, int ldw, int m, int col) {
  typedef typename Simd<T>::V V;
  constexpr int L = Simd<T>::L;
  V acc[R][NV];
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < NV; ++v) acc[r][v] = load<V>(W + (m + r) * ldw + col + v * L);
  for (int p = 0; p < rows; ++p) {
    V h[NV];
    for (int v = 0; v < NV; ++v) h[v] = load<V>(H + p * ldh + col + v * L);
    for (int r = 0; r < R; ++r) {
      const T g = G[p * ldg + m + r];
      for (int v = 0; v < NV; ++v) acc[r][v] += g * h[v];
    }
  }
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < NV; ++v) store(W + (m + r) * ldw + col + v * L, acc[r][v]);
}

template <class T>
void matmul_atb(const T* G, int M, const T* H, int N, int rows, T* W) {
  constexpr int L = Simd<T>::L, NV = 16 / L;  // 16 columns per tile (4 rows x 2 vectors in float)
  for (int col = 0; col < N; col += NV * L) {
    const bool full = col + NV * L <= N;
    int m = 0;
    for (; m + 4 <= M; m += 4) {
      if (full) tile_atb<T, 4, NV>(G, M, H, N, rows, W, N, m, col);
      else for (int c = col; c < N; c += L) tile_atb<T, 4, 1>(G, M, H, N, rows, W, N, m, c);
    }
    for (; m < M; ++m) for (int c = col; c < std::min(N, col + NV * L); c += L) tile_atb<T, 1, 1>(G, M, H, N, rows, W, N, m, c);
  }
}

struct Layout {
  std::vector<int> w;                // widths, w[0] = d
  std::vector<int64_t> wo, bo;       // offsets of each linear layer's weight and bias in a network's row
  int64_t total = 0;
  int layers = 0, n0 = 0, n1 = 0, P = 0, out = 0, maxw = 0;
};

template <class T> struct Adam {
  T b1, b2, eps;
  const T* bc1;       // bias corrections per step count (index t - 1), as zoo.adam.bias_corrections gives them
  const T* bc2_sqrt;
};

// One network's scratch and its step: forward, backward into grad, returns the MSE.
template <class T> struct Net {
  typedef typename Simd<T>::V V;
  static constexpr int L = Simd<T>::L;
  const Layout& lay;
  T w0;
  const T* ax0;
  const T* ax1;
  std::vector<T> sx, cx, sy, cy, wc0, wc1, gx, gy, gb;
  std::vector<std::vector<T>> wt, H, C;
  std::vector<T> G, Gn, dy;  // dy: one pixel's output gradient

  Net(const Layout& l, T w0_, const T* a0, const T* a1) : lay(l), w0(w0_), ax0(a0), ax1(a1) {
    const int h1 = lay.w[1];
    sx.resize(lay.n0 * h1); cx.resize(lay.n0 * h1); sy.resize(lay.n1 * h1); cy.resize(lay.n1 * h1);
    wc0.resize(h1); wc1.resize(h1); gx.resize(h1); gy.resize(h1); gb.resize(h1);
    wt.resize(lay.layers); H.resize(lay.layers); C.resize(lay.layers);
    for (int l = 1; l + 1 < lay.layers; ++l) wt[l].resize(lay.w[l] * lay.w[l + 1]);
    for (int l = 0; l + 1 < lay.layers; ++l) { H[l].resize(BLOCK * lay.w[l + 1]); C[l].resize(BLOCK * lay.w[l + 1]); }
    G.resize(BLOCK * lay.maxw); Gn.resize(BLOCK * lay.maxw); dy.resize(lay.out);
  }

  void first_layer_axes(const T* prm) {
    const int h1 = lay.w[1], d = lay.w[0];
    const T* W = prm + lay.wo[0];
    const T* b = prm + lay.bo[0];
    for (int u = 0; u < h1; ++u) { wc0[u] = W[u * d]; wc1[u] = d == 2 ? W[u * d + 1] : T(0); }
    for (int i = 0; i < lay.n0; ++i)
      for (int u = 0; u < h1; u += L) {
        V s, c;
        sincos(w0 * (ax0[i] * load<V>(&wc0[u]) + load<V>(b + u)), s, c);
        store(&sx[i * h1 + u], s); store(&cx[i * h1 + u], c);
      }
    for (int j = 0; j < lay.n1; ++j)
      for (int u = 0; u < h1; u += L) {
        V s, c;
        if (d == 2) sincos((w0 * ax1[j]) * load<V>(&wc1[u]), s, c);
        else { s = V{}; c = V{} + T(1); }
        store(&sy[j * h1 + u], s); store(&cy[j * h1 + u], c);
      }
  }

  T step(const T* prm, T* grad, const T* target, bool grads) {
    const int layers = lay.layers, h1 = lay.w[1], K = lay.w[layers - 1], out = lay.out;
    first_layer_axes(prm);
    for (int l = 1; l + 1 < layers; ++l) {
      const T* W = prm + lay.wo[l];
      const int in = lay.w[l], o = lay.w[l + 1];
      for (int r = 0; r < o; ++r) for (int k = 0; k < in; ++k) wt[l][k * o + r] = W[r * in + k];
    }
    if (grads) std::memset(grad, 0, sizeof(T) * lay.total);
    std::fill(gx.begin(), gx.end(), T(0)); std::fill(gy.begin(), gy.end(), T(0)); std::fill(gb.begin(), gb.end(), T(0));
    const T* Wout = prm + lay.wo[layers - 1];
    const T* bout = prm + lay.bo[layers - 1];
    const T scale = T(2.0 / (double(lay.P) * out));
    double sse = 0;
    int at0[BLOCK], at1[BLOCK];  // each pixel's index on axis 0 and axis 1
    for (int p0 = 0; p0 < lay.P; p0 += BLOCK) {
      const int nb = std::min(BLOCK, lay.P - p0);
      for (int q = 0; q < nb; ++q) {
        const int i = at0[q] = (p0 + q) / lay.n1, j = at1[q] = (p0 + q) % lay.n1;
        for (int u = 0; u < h1; u += L) {
          const V s0 = load<V>(&sx[i * h1 + u]), c0 = load<V>(&cx[i * h1 + u]);
          const V s1 = load<V>(&sy[j * h1 + u]), c1 = load<V>(&cy[j * h1 + u]);
          store(&H[0][q * h1 + u], s0 * c1 + c0 * s1);
          store(&C[0][q * h1 + u], c0 * c1 - s0 * s1);
        }
      }
      for (int l = 1; l + 1 < layers; ++l) {
        const int in = lay.w[l], o = lay.w[l + 1];
        const T* b = prm + lay.bo[l];
        T* h = H[l].data();
        T* c = C[l].data();
        const T w = w0;
        matmul<T>(H[l - 1].data(), in, wt[l].data(), o, nb, in, o, [=](int r, int col, V acc) {
          V s, cs;
          sincos(w * (acc + load<V>(b + col)), s, cs);
          store(h + r * o + col, s);
          store(c + r * o + col, cs);
        });
      }
      const T* hk = H[layers - 2].data();
      const T* ck = C[layers - 2].data();
      T* gwout = grad + lay.wo[layers - 1];
      for (int q = 0; q < nb; ++q) {
        const T* h = hk + q * K;
        for (int o = 0; o < out; ++o) {
          V acc{};
          for (int u = 0; u < K; u += L) acc += load<V>(h + u) * load<V>(Wout + o * K + u);
          T y = bout[o];
          for (int e = 0; e < L; ++e) y += acc[e];
          const T err = y - target[(int64_t)(p0 + q) * out + o];
          sse += double(err) * double(err);
          dy[o] = err * scale;
        }
        if (!grads) continue;
        for (int o = 0; o < out; ++o) grad[lay.bo[layers - 1] + o] += dy[o];
        for (int u = 0; u < K; u += L) {
          const V hu = load<V>(h + u);
          V back{};
          for (int o = 0; o < out; ++o) {
            store(gwout + o * K + u, load<V>(gwout + o * K + u) + dy[o] * hu);
            back += dy[o] * load<V>(Wout + o * K + u);
          }
          store(&G[q * K + u], w0 * back * load<V>(ck + q * K + u));
        }
      }
      if (!grads) continue;
      for (int l = layers - 2; l >= 1; --l) {  // G: gradient of layer l's pre-activation (before w0), width w[l+1]
        const int in = lay.w[l], o = lay.w[l + 1];
        matmul_atb<T>(G.data(), o, H[l - 1].data(), in, nb, grad + lay.wo[l]);
        T* gbias = grad + lay.bo[l];
        for (int q = 0; q < nb; ++q)
          for (int u = 0; u < o; u += L) store(gbias + u, load<V>(gbias + u) + load<V>(&G[q * o + u]));
        const T* c = C[l - 1].data();
        T* gn = Gn.data();
        const T w = w0;
        matmul<T>(G.data(), o, prm + lay.wo[l], in, nb, o, in, [=](int r, int col, V acc) {
          store(gn + r * in + col, w * acc * load<V>(c + r * in + col));
        });
        std::swap(G, Gn);
      }
      for (int u = 0; u < h1; u += L) {
        V ax{}, ay{}, ab{};
        for (int q = 0; q < nb; ++q) {
          const V g = load<V>(&G[q * h1 + u]);
          ab += g;
          ax += ax0[at0[q]] * g;
          ay += ax1[at1[q]] * g;
        }
        store(&gx[u], load<V>(&gx[u]) + ax);
        store(&gy[u], load<V>(&gy[u]) + ay);
        store(&gb[u], load<V>(&gb[u]) + ab);
      }
    }
    if (grads) {
      const int d = lay.w[0];
      for (int u = 0; u < h1; ++u) {
        grad[lay.wo[0] + u * d] = gx[u];
        if (d == 2) grad[lay.wo[0] + u * d + 1] = gy[u];
        grad[lay.bo[0] + u] = gb[u];
      }
    }
    return T(sse / (double(lay.P) * out));
  }
};

// BatchedAdam.step for one network at step count t (1-based), in the same operation order.
template <class T>
void adam_update(const Adam<T>& a, int64_t n, int t, T lr, T* p, T* m, T* v, const T* g) {
  const T step_size = lr / a.bc1[t - 1], bc2 = a.bc2_sqrt[t - 1];
  const T c1 = T(1.0 - double(a.b1)), c2 = T(1.0 - double(a.b2));
  for (int64_t k = 0; k < n; ++k) {
    const T mk = m[k] + c1 * (g[k] - m[k]);
    const T vk = v[k] * a.b2 + c2 * g[k] * g[k];
    m[k] = mk;
    v[k] = vk;
    p[k] -= mk / (std::sqrt(vk) / bc2 + a.eps) * step_size;
  }
}

struct Denormals {  // flush denormals on this thread while alive (near-exact fits otherwise slow down ~20x)
#if defined(__x86_64__) || defined(__i386__)
  unsigned saved = _mm_getcsr();
  Denormals() { _mm_setcsr(saved | 0x8040); }
  ~Denormals() { _mm_setcsr(saved); }
#endif
};

template <class T>
void fit(const int64_t* dims, const double* scalars, void** ptrs) {
  Layout lay;
  const int64_t n = dims[1];
  lay.layers = int(dims[2]);
  for (int l = 0; l <= lay.layers; ++l) lay.w.push_back(int(dims[3 + l]));
  const int64_t* rest = dims + 4 + lay.layers;
  lay.n0 = int(rest[0]); lay.n1 = int(rest[1]);
  const int steps = int(rest[2]), check_every = int(rest[3]), threads = int(rest[4]);
  lay.P = lay.n0 * lay.n1;
  lay.out = lay.w[lay.layers];
  for (int l = 0; l < lay.layers; ++l) {
    lay.wo.push_back(lay.total); lay.total += int64_t(lay.w[l]) * lay.w[l + 1];
    lay.bo.push_back(lay.total); lay.total += lay.w[l + 1];
  }
  for (int l = 1; l < lay.layers; ++l) lay.maxw = std::max(lay.maxw, lay.w[l]);
  const T w0 = T(scalars[0]), target_psnr = T(scalars[1]);
  const bool stop_early = check_every > 0;
  Adam<T> adam{T(scalars[2]), T(scalars[3]), T(scalars[4]), static_cast<const T*>(ptrs[5]), static_cast<const T*>(ptrs[6])};
  T* params = static_cast<T*>(ptrs[0]);
  const T* targets = static_cast<const T*>(ptrs[1]);
  const T* ax0 = static_cast<const T*>(ptrs[2]);
  const T* ax1 = static_cast<const T*>(ptrs[3]);
  const T* lr = static_cast<const T*>(ptrs[4]);
  T* mse_out = static_cast<T*>(ptrs[7]);
  int64_t* taken_out = static_cast<int64_t*>(ptrs[8]);
#pragma omp parallel num_threads(threads)
  {
    Denormals flush;
    Net<T> net(lay, w0, ax0, ax1);
    std::vector<T> grad(lay.total), m(lay.total), v(lay.total);
#pragma omp for schedule(dynamic, 1)
    for (int64_t i = 0; i < n; ++i) {
      T* p = params + i * lay.total;
      const T* t = targets + i * int64_t(lay.P) * lay.out;
      std::fill(m.begin(), m.end(), T(0));
      std::fill(v.begin(), v.end(), T(0));
      int taken = 0;
      for (int s = 0; s < steps; ++s) {
        const T mse = net.step(p, grad.data(), t, true);
        if (stop_early && s % check_every == 0 && !(T(10) * std::log10(T(4) / std::max(mse, T(1e-20))) < target_psnr)) break;  // as `active &= psnr < target` (NaN stops)
        adam_update(adam, lay.total, ++taken, lr[i], p, m.data(), v.data(), grad.data());
      }
      mse_out[i] = net.step(p, grad.data(), t, false);
      taken_out[i] = taken;
    }
  }
}

}  // namespace

// dims: dtype (0 float32, 1 float64), networks, linear layers L, widths[0..L], axis lengths n0, n1 (1 when
// d = 1), steps, check_every (0: no target), threads. scalars: w0, target PSNR, beta1, beta2, eps.
// ptrs: params (N, total) updated in place, targets (N, P, out), axis 0, axis 1, lr (N,), bias
// corrections bc1 and sqrt(bc2) per step count (steps,), final MSE out (N,), steps taken out (N,) int64.
extern "C" void ws_siren_fit(const int64_t* dims, const double* scalars, void** ptrs) {
  if (dims[0] == 0) fit<float>(dims, scalars, ptrs);
  else fit<double>(dims, scalars, ptrs);
}
