// Fused CPU step of the per-parameter MLP, Deep-Set and group-context learned rules.
//
// Built and called by weightspace/lopt/native.py (plain C ABI through ctypes: no torch
// headers, so the build takes seconds). One step of `LearnedRule.forward` for float32
// tensors, without materializing any feature channel: every pass streams the parameter,
// gradient and accumulators in blocks of B elements and keeps the features and hidden
// activations of a block in L1 / registers.
//
// Passes over each tensor (the meta-network reads statistics over whole tensors, so one
// pass cannot do it all):
//   1. update momenta and RMS in place; sum the squares of the raw channels (their
//      normalizers), of the nominal term (the bound), and, when the net pools, the raw
//      channels over the tensor and over each permuted factor (tensor and group contexts);
//   2. (pooling nets, one per hidden layer but the last) evaluate the net up to that
//      layer and pool its output the same way;
//   3. evaluate the whole net and apply the update to the parameter in place.
// Between passes the pooled statistics become per-tensor layer biases and per-unit group
// contexts (tiny maps, serial, in double).
//
// Elements of a tensor are visited in "runs": maximal contiguous stretches in which the
// unit index of every permuted factor is constant, except possibly the innermost factor
// whose unit index is then the offset in the run (`Key::inner`). A run's constant group
// contexts are added to its layer biases once per run.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

namespace {

constexpr int B = 16;          // elements per block
constexpr int64_t SEG = 2048;  // elements summed in float lanes before flushing into double
constexpr int MAXM = 8;        // momenta
constexpr int MAXT = 16;       // time scales
constexpr int MAXC = 64;       // raw channels (4 + 2 M) and hidden width
constexpr int MAXL = 16;       // hidden layers

struct Member {
  int64_t dim, size, stride, group, pad;  // pad: row stride of this member's per-unit arrays
};

struct Config {
  int M, T, R, C0, H, L;
  float decay[MAXM], omdecay[MAXM];
  float rho, omr, eps, beta;
  double time_scales[MAXT];
  bool adam, bounded, tensor_ctx, group_ctx;
  int nominal;
  const float *W[MAXL], *b[MAXL], *pool[MAXL], *group[MAXL];  // per layer: own map, bias, tensor and group maps
  const float* hw;
  float hb;
};

struct Key {
  int64_t n;
  float *p, *g, *m, *v, *step;
  float lr_alpha;
  std::vector<Member> members;
  int64_t run;
  int inner;  // index of the member whose unit is the offset in the run, or -1
  float* h;   // H x n scratch for the hidden features between passes, or null
  float inv_v, inv_m, nrms;
  float time[MAXT];
  double inv_rms[MAXC];
  std::vector<float> w1;                // H x R: first layer with the normalizers folded in
  std::vector<float> bias;              // L x H: bias + time + tensor context
  std::vector<std::vector<float>> ctx;  // per member: L x H x pad, group context / members
};

enum Pass { STATS_RAW, STATS_HIDDEN, FINAL };

// Blocks are NV vectors of W lanes (GCC vector extensions: AVX2 registers where the CPU has
// them, pairs of SSE registers or scalars elsewhere).
constexpr int W = 8;
constexpr int NV = B / W;
typedef float V __attribute__((vector_size(4 * W)));
typedef int VI __attribute__((vector_size(4 * W)));

inline V splat(float a) { return V{} + a; }
inline V loadu(const float* p) {
  V v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
inline void storeu(float* p, V v) { std::memcpy(p, &v, sizeof v); }
inline V vmax(V a, V b) { return a > b ? a : b; }
inline V vmin(V a, V b) { return a < b ? a : b; }
inline V vsqrt(V a) {
#if defined(__AVX__)
  return __builtin_ia32_sqrtps256(a);
#else
  V r;
  for (int l = 0; l < W; ++l) r[l] = std::sqrt(a[l]);
  return r;
#endif
}

// 1 / sqrt(a) for a >= FLT_MIN and 1 / a for a > 0: the hardware estimates refined by one
// Newton step (relative error ~3e-7; sqrt and divide cost far more on many cores).
inline V vrsqrt(V a) {
#if defined(__AVX__)
  const V y = __builtin_ia32_rsqrtps256(a);
  return y * (1.5f - 0.5f * a * y * y);
#else
  return 1.0f / vsqrt(a);
#endif
}
inline V vrcp(V a) {
#if defined(__AVX__)
  const V y = __builtin_ia32_rcpps256(a);
  return y * (2.0f - a * y);
#else
  return 1.0f / a;
#endif
}

inline V vtanh(V a) {
  // Rational approximation (odd 13 / even 6 after Eigen's), |error| < 1e-6 on the float range.
  const V x = vmin(vmax(a, splat(-7.90531110763549805f)), splat(7.90531110763549805f));
  const V x2 = x * x;
  V p = x2 * -2.76076847742355e-16f + 2.00018790482477e-13f;
  p = x2 * p + -8.60467152213735e-11f;
  p = x2 * p + 5.12229709037114e-08f;
  p = x2 * p + 1.48572235717979e-05f;
  p = x2 * p + 6.37261928875436e-04f;
  p = x2 * p + 4.89352455891786e-03f;
  p = x * p;
  V q = x2 * 1.19825839466702e-06f + 1.18534705686654e-04f;
  q = x2 * q + 2.26843463243900e-03f;
  q = x2 * q + 4.89352518554385e-03f;
  return p * vrcp(q);
}

// Lanes < cnt of the block (all of them when cnt == B).
inline void lane_mask(int cnt, VI* mask) {
  VI lane;
  for (int l = 0; l < W; ++l) lane[l] = l;
  for (int u = 0; u < NV; ++u) mask[u] = (lane + u * W) < cnt;
}

struct Block {
  V p[NV], g[NV], v[NV], m[MAXM][NV];
};

// Reads elements [i, i + cnt) of the state (zeros past cnt).
inline void load_lanes(const float* src, int cnt, V* dst) {
  if (cnt == B) {
    for (int u = 0; u < NV; ++u) dst[u] = loadu(src + u * W);
  } else {
    float pad[B] = {};
    std::memcpy(pad, src, sizeof(float) * cnt);
    for (int u = 0; u < NV; ++u) dst[u] = loadu(pad + u * W);
  }
}

inline void load(int M, const Key& k, int64_t i, int cnt, Block& s) {
  load_lanes(k.p + i, cnt, s.p);
  load_lanes(k.g + i, cnt, s.g);
  load_lanes(k.v + i, cnt, s.v);
  for (int q = 0; q < M; ++q) load_lanes(k.m + q * k.n + i, cnt, s.m[q]);
}

inline void store(float* dst, const V* src, int cnt) {
  if (cnt == B) {
    for (int u = 0; u < NV; ++u) storeu(dst + u * W, src[u]);
  } else {
    float pad[B];
    for (int u = 0; u < NV; ++u) storeu(pad + u * W, src[u]);
    std::memcpy(dst, pad, sizeof(float) * cnt);
  }
}

inline void update_state(const Config& c, int M, const Key& k, int64_t i, int cnt, Block& s) {
  for (int q = 0; q < M; ++q) {
    for (int u = 0; u < NV; ++u) s.m[q][u] = c.decay[q] * s.m[q][u] + c.omdecay[q] * s.g[u];
    store(k.m + q * k.n + i, s.m[q], cnt);
  }
  for (int u = 0; u < NV; ++u) s.v[u] = c.rho * s.v[u] + (c.omr * s.g[u]) * s.g[u];
  store(k.v + i, s.v, cnt);
}

// Raw channels p, g, momenta, sqrt(v + eps), g / sqrt(v_hat + eps), momenta / sqrt(v_hat + eps)
// (as features.raw_features), and the nominal term.
// The nominal term of one vector: m_hat / (sqrt(v_hat) + eps) (Adam) or the momentum (SGDM).
inline V nominal(const Config& c, const Key& k, V m, V corrected) {
  if (!c.adam) return m;
  const V root = corrected * vrsqrt(vmax(corrected, splat(1e-30f)));  // finite at v_hat = 0
  return m * k.inv_m * vrcp(root + c.eps);
}

inline void features(const Config& c, int M, const Key& k, const Block& s, V (*x)[NV], V* nom) {
  V r[NV];
  for (int u = 0; u < NV; ++u) {
    const V shifted = s.v[u] + c.eps, corrected = s.v[u] * k.inv_v;
    x[0][u] = s.p[u];
    x[1][u] = s.g[u];
    x[2 + M][u] = shifted * vrsqrt(shifted);
    r[u] = vrsqrt(corrected + c.eps);
    x[3 + M][u] = s.g[u] * r[u];
    nom[u] = nominal(c, k, s.m[c.nominal][u], corrected);
  }
  for (int q = 0; q < M; ++q)
    for (int u = 0; u < NV; ++u) x[2 + q][u] = s.m[q][u], x[4 + M + q][u] = s.m[q][u] * r[u];
}

// Adds the squares of the raw channels and of the nominal term (the first pass of a net that
// does not pool needs nothing else: sqrt(v + eps)^2 and (g / sqrt(v_hat + eps))^2 need no root).
// Lanes past the block's count hold zero state; only v + eps must be masked there.
inline void add_squares(const Config& c, int M, const Key& k, const Block& s, int cnt, V (*sq)[NV], V* nsq) {
  VI mask[NV];
  lane_mask(cnt, mask);
  for (int u = 0; u < NV; ++u) {
    const V corrected = s.v[u] * k.inv_v, r2 = vrcp(corrected + c.eps), g2 = s.g[u] * s.g[u];
    sq[0][u] += s.p[u] * s.p[u];
    sq[1][u] += g2;
    sq[2 + M][u] += mask[u] ? s.v[u] + c.eps : V{};
    sq[3 + M][u] += g2 * r2;
    for (int q = 0; q < M; ++q) {
      const V m2 = s.m[q][u] * s.m[q][u];
      sq[2 + q][u] += m2;
      sq[4 + M + q][u] += m2 * r2;
    }
    const V nom = nominal(c, k, s.m[c.nominal][u], corrected);
    nsq[u] += nom * nom;
  }
}

// h[o] = relu(w[o] . x + rowc[o] + inner[o]) for outputs o0 .. o0 + G of one block (G rows
// at once: G x NV independent accumulators hide the FMA latency); `inner` may be null.
template <int G>
inline void dense_rows(const float* w, int in, int o0, const V (*x)[NV], const float* rowc, const float* inner,
                       int64_t istride, V (*h)[NV]) {
  V acc[G][NV];
  for (int a = 0; a < G; ++a)
    for (int u = 0; u < NV; ++u)
      acc[a][u] = splat(rowc[o0 + a]) + (inner ? loadu(inner + (o0 + a) * istride + u * W) : V{});
  for (int i = 0; i < in; ++i)
    for (int a = 0; a < G; ++a) {
      const float wi = w[(o0 + a) * in + i];
      for (int u = 0; u < NV; ++u) acc[a][u] += wi * x[i][u];
    }
  for (int a = 0; a < G; ++a)
    for (int u = 0; u < NV; ++u) h[o0 + a][u] = vmax(acc[a][u], V{});
}

inline void dense(const float* w, int in, int out, const V (*x)[NV], const float* rowc, const float* inner,
                  int64_t istride, V (*h)[NV]) {
  int o = 0;
  for (; o + 4 <= out; o += 4) dense_rows<4>(w, in, o, x, rowc, inner, istride, h);
  for (; o < out; ++o) dense_rows<1>(w, in, o, x, rowc, inner, istride, h);
}

// One pass over elements [begin, end) of key k. Statistics go to tacc (squares, sums, nominal
// squares: 2 C + 1 doubles) and pacc (per member: C x pad floats of per-unit sums).
// MT, HT: the number of momenta and the hidden width when known at compile time (0: read them
// from the config), so that the common shapes get fully unrolled loops.
template <Pass pass, int MT, int HT>
void piece(const Config& c, const Key& k, int upto, int64_t begin, int64_t end, double* tacc, float* pacc) {
  const int M = MT ? MT : c.M, H = HT ? HT : c.H, R = 4 + 2 * M;
  const int C = pass == STATS_RAW ? R : H;
  const int layers = pass == FINAL ? c.L : (pass == STATS_HIDDEN ? upto + 1 : 0);
  const bool pool = c.tensor_ctx || c.group_ctx;
  const size_t nmem = k.members.size();
  std::vector<float*> pooled(nmem);
  {
    float* at = pacc;
    for (size_t q = 0; q < nmem; ++q) pooled[q] = at, at += C * k.members[q].pad;
  }
  std::vector<int64_t> unit(nmem, 0);
  V x[MAXC][NV], h[2][MAXC][NV], sq[MAXC][NV], sum[MAXC][NV], nom[NV], nsq[NV];
  float rowc[MAXL * MAXC];
  int64_t current = -1;
  for (int64_t i = begin; i < end;) {
    const int64_t r = i / k.run, j = i - r * k.run;
    const int64_t stop = std::min(std::min(end, (r + 1) * k.run), i + SEG);
    if (r != current) {
      current = r;
      for (size_t q = 0; q < nmem; ++q)
        if ((int)q != k.inner) unit[q] = ((r * k.run) / k.members[q].stride) % k.members[q].size;
      for (int l = 0; l < layers; ++l)
        for (int o = 0; o < H; ++o) {
          float value = k.bias[l * H + o];
          for (size_t q = 0; q < nmem; ++q)
            if ((int)q != k.inner) value += k.ctx[q][(l * H + o) * k.members[q].pad + unit[q]];
          rowc[l * H + o] = value;
        }
    }
    if (pass != FINAL)
      for (int u = 0; u < NV; ++u) {
        for (int q = 0; q < C; ++q) sq[q][u] = sum[q][u] = V{};
        nsq[u] = V{};
      }
    for (int64_t ii = i; ii < stop; ii += B) {
      const int cnt = (int)std::min<int64_t>(B, stop - ii);
      const int64_t jj = j + (ii - i);
      Block s;
      V(*out)[NV] = x;
      // With a scratch, a later pass starts from the hidden features the one before stored.
      const int first = k.h == nullptr || pass == STATS_RAW ? 0 : (pass == FINAL ? c.L - 1 : upto);
      if (first > 0) {
        out = h[(first + 1) % 2];
        for (int o = 0; o < H; ++o) load_lanes(k.h + o * k.n + ii, cnt, out[o]);
        if (pass == FINAL) {
          load_lanes(k.p + ii, cnt, s.p);
          load_lanes(k.v + ii, cnt, s.v);
          load_lanes(k.m + c.nominal * k.n + ii, cnt, s.m[c.nominal]);
          for (int u = 0; u < NV; ++u) nom[u] = nominal(c, k, s.m[c.nominal][u], s.v[u] * k.inv_v);
        }
      } else {
        load(M, k, ii, cnt, s);
        if (pass == STATS_RAW) {
          update_state(c, M, k, ii, cnt, s);
          if (!pool) {
            add_squares(c, M, k, s, cnt, sq, nsq);
            continue;
          }
        }
        features(c, M, k, s, x, nom);
      }
      for (int l = first; l < layers; ++l) {
        const float* inner = nullptr;
        int64_t istride = 0;
        if (k.inner >= 0) {
          istride = k.members[k.inner].pad;
          inner = k.ctx[k.inner].data() + (l * H) * istride + jj;
        }
        dense(l == 0 ? k.w1.data() : c.W[l], l == 0 ? R : H, H, out, rowc + l * H, inner, istride, h[l % 2]);
        out = h[l % 2];
      }
      if (pass == STATS_HIDDEN && k.h)
        for (int o = 0; o < H; ++o) store(k.h + o * k.n + ii, out[o], cnt);
      if (pass == FINAL) {
        V o[NV];
        for (int u = 0; u < NV; ++u) o[u] = splat(c.hb);
        for (int q = 0; q < H; ++q)
          for (int u = 0; u < NV; ++u) o[u] += c.hw[q] * out[q][u];
        for (int u = 0; u < NV; ++u) {
          const V learned = c.bounded ? k.nrms * vtanh(o[u]) : o[u];
          o[u] = s.p[u] - k.lr_alpha * (nom[u] + c.beta * learned);
        }
        store(k.p + ii, o, cnt);
        continue;
      }
      if (cnt < B) {
        VI mask[NV];
        lane_mask(cnt, mask);
        for (int u = 0; u < NV; ++u) {
          for (int q = 0; q < C; ++q) out[q][u] = mask[u] ? out[q][u] : V{};
          nom[u] = mask[u] ? nom[u] : V{};
        }
      }
      for (int u = 0; u < NV; ++u) {
        if (pass == STATS_RAW) {
          for (int q = 0; q < C; ++q) sq[q][u] += out[q][u] * out[q][u];
          nsq[u] += nom[u] * nom[u];
        }
        if (pool)
          for (int q = 0; q < C; ++q) sum[q][u] += out[q][u];
      }
      if (k.inner >= 0) {
        float* base = pooled[k.inner] + jj;
        const int64_t pad = k.members[k.inner].pad;
        for (int q = 0; q < C; ++q)
          for (int u = 0; u < NV; ++u) storeu(base + q * pad + u * W, loadu(base + q * pad + u * W) + out[q][u]);
      }
    }
    if (pass != FINAL) {
      double total = 0.0;
      for (int u = 0; u < NV; ++u)
        for (int l = 0; l < W; ++l) total += nsq[u][l];
      tacc[2 * C] += total;
      for (int q = 0; q < C; ++q) {
        double squares = 0.0, sums = 0.0;
        for (int u = 0; u < NV; ++u)
          for (int l = 0; l < W; ++l) squares += sq[q][u][l], sums += sum[q][u][l];
        tacc[q] += squares;
        tacc[C + q] += sums;
        for (size_t m = 0; m < nmem; ++m)
          if ((int)m != k.inner) pooled[m][q * k.members[m].pad + unit[m]] += (float)sums;
      }
    }
    i = stop;
  }
}

template <int MT, int HT>
void run_shape(const Config& c, const Key& k, Pass pass, int upto, int64_t begin, int64_t end, double* tacc,
               float* pacc) {
  if (pass == STATS_RAW)
    piece<STATS_RAW, MT, HT>(c, k, upto, begin, end, tacc, pacc);
  else if (pass == STATS_HIDDEN)
    piece<STATS_HIDDEN, MT, HT>(c, k, upto, begin, end, tacc, pacc);
  else
    piece<FINAL, MT, HT>(c, k, upto, begin, end, tacc, pacc);
}

// Compiled shapes: 3 momenta (the default) at hidden widths 4 and 32; any other shape runs the
// generic loops.
void run_piece(const Config& c, const Key& k, Pass pass, int upto, int64_t begin, int64_t end, double* tacc,
               float* pacc) {
  if (c.M == 3 && c.H == 4)
    run_shape<3, 4>(c, k, pass, upto, begin, end, tacc, pacc);
  else if (c.M == 3 && c.H == 32)
    run_shape<3, 32>(c, k, pass, upto, begin, end, tacc, pacc);
  else
    run_shape<0, 0>(c, k, pass, upto, begin, end, tacc, pacc);
}

struct Item {
  int key;
  int64_t begin, end, tacc, pacc;
};

// Group contexts of layer l from the pooled statistics (summed over each key's items, in
// the first item's slots), written into every member's ctx row l.
void group_contexts(const Config& c, std::vector<Key>& keys, const std::vector<float*>& pooled, int l, int ngroups,
                    const std::vector<int64_t>& group_size) {
  const int cin = l == 0 ? c.C0 : c.H, cstat = l == 0 ? c.R : c.H;
  for (int g = 0; g < ngroups; ++g) {
    const int64_t size = group_size[g];
    std::vector<double> mean(cin * size, 0.0);
    int count = 0;
    for (size_t kk = 0; kk < keys.size(); ++kk) {
      const Key& k = keys[kk];
      const float* at = pooled[kk];
      for (const Member& m : k.members) {
        if (m.group == g) {
          ++count;
          const double scale = (double)m.size / (double)k.n;
          for (int q = 0; q < cstat; ++q) {
            const double norm = l == 0 ? k.inv_rms[q] : 1.0;
            for (int64_t u = 0; u < size; ++u) mean[q * size + u] += at[q * m.pad + u] * scale * norm;
          }
          if (l == 0)
            for (int t = 0; t < c.T; ++t)
              for (int64_t u = 0; u < size; ++u) mean[(c.R + t) * size + u] += k.time[t];
        }
        at += cstat * m.pad;
      }
    }
    if (count == 0) continue;
    std::vector<double> mapped(c.H * size, 0.0);
    for (int o = 0; o < c.H; ++o)
      for (int q = 0; q < cin; ++q) {
        const double w = c.group[l][o * cin + q] / count;
        for (int64_t u = 0; u < size; ++u) mapped[o * size + u] += w * mean[q * size + u];
      }
    for (Key& k : keys)
      for (size_t q = 0; q < k.members.size(); ++q) {
        const Member& m = k.members[q];
        if (m.group != g) continue;
        const double share = 1.0 / (double)k.members.size();
        float* row = k.ctx[q].data() + (size_t)l * c.H * m.pad;
        for (int o = 0; o < c.H; ++o)
          for (int64_t u = 0; u < size; ++u) row[o * m.pad + u] = (float)(mapped[o * size + u] * share);
      }
  }
}

}  // namespace

extern "C" {

// Limits of this build: momenta, time scales, channels (raw and hidden), hidden layers.
void ws_lopt_limits(int64_t* out) {
  out[0] = MAXM, out[1] = MAXT, out[2] = MAXC, out[3] = MAXL;
}

// One step; the arguments are packed by `native_step` in weightspace/lopt/native.py.
void ws_lopt_step(const int64_t* ints, const double* reals, void* const* ptrs, int64_t threads) {
  Config c;
  int64_t nkeys = ints[0];
  c.M = (int)ints[1], c.T = (int)ints[2], c.H = (int)ints[3], c.L = (int)ints[4];
  c.adam = ints[5] != 0, c.nominal = (int)ints[6], c.bounded = ints[7] != 0;
  c.tensor_ctx = ints[8] != 0, c.group_ctx = ints[9] != 0;
  const int ngroups = (int)ints[10];
  std::vector<int64_t> group_size(ints + 11, ints + 11 + ngroups);
  const int64_t* it = ints + 11 + ngroups;
  c.R = 4 + 2 * c.M, c.C0 = c.R + c.T;
  c.rho = (float)reals[0], c.omr = (float)(1.0 - reals[0]), c.eps = (float)reals[1], c.beta = (float)reals[2];
  for (int q = 0; q < c.M; ++q) {
    c.decay[q] = (float)reals[3 + q];
    c.omdecay[q] = 1.0f - c.decay[q];
  }
  for (int t = 0; t < c.T; ++t) c.time_scales[t] = reals[3 + c.M + t];
  const double* lr_alpha = reals + 3 + c.M + c.T;
  void* const* pt = ptrs;
  for (int l = 0; l < c.L; ++l) c.W[l] = (const float*)*pt++;
  for (int l = 0; l < c.L; ++l) c.b[l] = (const float*)*pt++;
  for (int l = 0; l < c.L; ++l) c.pool[l] = (const float*)*pt++;
  for (int l = 0; l < c.L; ++l) c.group[l] = (const float*)*pt++;
  c.hw = (const float*)*pt++;
  c.hb = *(const float*)*pt++;

  float* scratch = (float*)*pt++;  // H floats per element (pooling nets, optional)
  std::vector<Key> keys(nkeys);
  int64_t total = 0;
  for (int64_t kk = 0; kk < nkeys; ++kk) {
    Key& k = keys[kk];
    k.n = *it++;
    total += k.n;
    const int64_t nf = *it++;
    std::vector<int64_t> factored(it, it + nf);
    it += nf;
    const int64_t nm = *it++;
    int dmax = -1;
    for (int64_t q = 0; q < nm; ++q) {
      Member m;
      m.dim = it[0], m.group = it[1];
      it += 2;
      m.size = factored[m.dim];
      m.stride = 1;
      for (int64_t d = m.dim + 1; d < nf; ++d) m.stride *= factored[d];
      m.pad = m.size + B;
      dmax = std::max(dmax, (int)m.dim);
      k.members.push_back(m);
    }
    k.inner = -1;
    k.run = k.n;
    if (dmax >= 0) {
      int64_t tail = 1;
      for (int64_t d = dmax + 1; d < nf; ++d) tail *= factored[d];
      k.run = tail;
      if (tail == 1)
        for (int64_t q = 0; q < nm; ++q)
          if (k.members[q].dim == dmax) k.inner = (int)q, k.run = k.members[q].size;
    }
    k.p = (float*)*pt++, k.g = (float*)*pt++, k.m = (float*)*pt++, k.v = (float*)*pt++, k.step = (float*)*pt++;
    k.h = scratch && (c.tensor_ctx || c.group_ctx) ? scratch + c.H * (total - k.n) : nullptr;
    k.lr_alpha = (float)lr_alpha[kk];
    *k.step += 1.0f;
    const float step = std::max(*k.step, 1.0f);
    k.inv_v = 1.0f / (1.0f - std::pow(c.rho, step));
    k.inv_m = 1.0f / (1.0f - std::pow(c.decay[c.nominal], step));
    for (int t = 0; t < c.T; ++t) k.time[t] = std::tanh(*k.step / (float)c.time_scales[t]);
    k.w1.assign(c.H * c.R, 0.0f);
    k.bias.assign(c.L * c.H, 0.0f);
    k.ctx.resize(nm);
    for (int64_t q = 0; q < nm; ++q) k.ctx[q].assign((size_t)c.L * c.H * k.members[q].pad, 0.0f);
  }

  // Work items: each tensor in pieces of about total / (4 threads) elements.
  const int64_t cmax = std::max(c.R, c.H);
  const int64_t grain = threads > 1 ? std::max<int64_t>(16384, (total / (4 * threads) + 63) / 64 * 64) : total + 1;
  std::vector<Item> items;
  int64_t tsize = 0, psize = 0;
  std::vector<size_t> first(nkeys);
  for (int64_t kk = 0; kk < nkeys; ++kk) {
    int64_t per = 0;
    for (const Member& m : keys[kk].members) per += cmax * m.pad;
    first[kk] = items.size();
    for (int64_t b = 0; b < keys[kk].n; b += grain) {
      items.push_back({(int)kk, b, std::min(keys[kk].n, b + grain), tsize, psize});
      tsize += 2 * cmax + 1;
      psize += per;
    }
  }
  std::vector<double> tacc(tsize);
  std::vector<float> pacc(psize);
  const int64_t nitems = (int64_t)items.size();

  auto pass_over = [&](Pass pass, int upto) {
    std::fill(tacc.begin(), tacc.end(), 0.0);
    std::fill(pacc.begin(), pacc.end(), 0.0f);
#pragma omp parallel for schedule(static) num_threads((int)threads) if (threads > 1 && nitems > 1)
    for (int64_t w = 0; w < nitems; ++w) {
      const Item& item = items[w];
      run_piece(c, keys[item.key], pass, upto, item.begin, item.end, tacc.data() + item.tacc,
                pacc.data() + item.pacc);
    }
    if (pass == FINAL) return;
    // Reduce every key's items into its first item's slots, in item order.
    for (int64_t w = 0; w < nitems; ++w) {
      const Item& item = items[w];
      const Item& head = items[first[item.key]];
      if (&item == &head) continue;
      for (int64_t q = 0; q < 2 * cmax + 1; ++q) tacc[head.tacc + q] += tacc[item.tacc + q];
      int64_t per = 0;
      for (const Member& m : keys[item.key].members) per += cmax * m.pad;
      for (int64_t q = 0; q < per; ++q) pacc[head.pacc + q] += pacc[item.pacc + q];
    }
  };

  std::vector<float*> pooled(nkeys);
  for (int64_t kk = 0; kk < nkeys; ++kk) pooled[kk] = pacc.data() + items[first[kk]].pacc;

  pass_over(STATS_RAW, 0);
  for (int64_t kk = 0; kk < nkeys; ++kk) {
    Key& k = keys[kk];
    const double* t = tacc.data() + items[first[kk]].tacc;
    const double n = (double)k.n;
    for (int q = 0; q < c.R; ++q) k.inv_rms[q] = 1.0 / std::sqrt(t[q] / n + (double)c.eps);
    k.nrms = (float)std::sqrt(t[2 * c.R] / n);
    for (int o = 0; o < c.H; ++o) {
      const float* w = c.W[0] + o * c.C0;
      double value = c.b[0][o];
      for (int q = 0; q < c.R; ++q) k.w1[o * c.R + q] = (float)(w[q] * k.inv_rms[q]);
      for (int t2 = 0; t2 < c.T; ++t2) value += (double)w[c.R + t2] * k.time[t2];
      if (c.tensor_ctx) {
        const float* u = c.pool[0] + o * c.C0;
        for (int q = 0; q < c.R; ++q) value += (double)u[q] * (t[c.R + q] / n) * k.inv_rms[q];
        for (int t2 = 0; t2 < c.T; ++t2) value += (double)u[c.R + t2] * k.time[t2];
      }
      k.bias[o] = (float)value;
    }
    for (int l = 1; l < c.L; ++l)
      for (int o = 0; o < c.H; ++o) k.bias[l * c.H + o] = c.b[l][o];
  }
  if (c.group_ctx) group_contexts(c, keys, pooled, 0, ngroups, group_size);
  if (c.tensor_ctx || c.group_ctx) {
    for (int l = 0; l + 1 < c.L; ++l) {
      pass_over(STATS_HIDDEN, l);
      for (int64_t kk = 0; kk < nkeys; ++kk) {
        Key& k = keys[kk];
        const double* t = tacc.data() + items[first[kk]].tacc;
        for (int o = 0; o < c.H; ++o) {
          double value = c.b[l + 1][o];
          if (c.tensor_ctx)
            for (int q = 0; q < c.H; ++q) value += (double)c.pool[l + 1][o * c.H + q] * (t[c.H + q] / (double)k.n);
          k.bias[(l + 1) * c.H + o] = (float)value;
        }
      }
      if (c.group_ctx) group_contexts(c, keys, pooled, l + 1, ngroups, group_size);
    }
  }
  pass_over(FINAL, 0);
}

}  // extern "C"
