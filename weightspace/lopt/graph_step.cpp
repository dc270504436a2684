// Fused per-edge work of the graph learned optimizer's meta-network (GraphMetaNet), forward only.
//
// Built and called by weightspace/lopt/graph_native.py (plain C ABI through ctypes). The
// optimizer's step needs no gradient, so each pass over the task model's edges runs one whole
// stage per block of 8 edges in registers (edges across the 8 float lanes, channels unrolled):
//   ws_lgraph_layer: (first layer: the feature edge encoder from the raw feature channels, with
//     the per-tensor normalizers and time folded into per-entry weights) the EdgeMPNNLayer's
//     edge update e += MLP([h_src, h_dst, LN(e)]) stored in place, then both message MLPs of
//     LN(e) scattered into per-node sums, squares and maxima;
//   ws_lgraph_head: EdgeHead's pair MLP and its per-width projection, written in value order.
// The node-side work (N rows) stays in torch. Node terms (the node blocks of each MLP's first
// layer applied to the node rows) come channel-major (H, N); edge features are kept
// channel-major (H, E). In a parameter graph the edges of one entry run over consecutive
// source units with a constant target (or the reverse): a block whose indices are consecutive
// loads and stores node rows as vectors, a constant one accumulates in registers until the
// index changes, any other block goes lane by lane.
#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

namespace {

constexpr int W = 8;
constexpr int MAXR = 64;
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

// Hardware estimates refined by one Newton step (relative error ~3e-7).
inline V vrcp(V a) {
#if defined(__AVX__)
  const V y = __builtin_ia32_rcpps256(a);
  return y * (2.0f - a * y);
#else
  return 1.0f / a;
#endif
}
inline V vrsqrt(V a) {
#if defined(__AVX__)
  const V y = __builtin_ia32_rsqrtps256(a);
  return y * (1.5f - 0.5f * a * y * y);
#else
  V r;
  for (int l = 0; l < W; ++l) r[l] = 1.0f / std::sqrt(a[l]);
  return r;
#endif
}

// exp(x) = 2^n exp(r), n = round(x / ln 2), |r| <= ln 2 / 2, exp(r) by its Taylor polynomial of
// degree 6 (relative error < 2e-7).
inline V vexp(V x) {
  x = x > 88.3762626647949f ? splat(88.3762626647949f) : x;
  x = x < -87.3365447505531f ? splat(-87.3365447505531f) : x;
#if defined(__AVX__)
  const V n = __builtin_ia32_roundps256(x * 1.44269504088896341f, 0);  // to nearest
#else
  V n = __builtin_convertvector(__builtin_convertvector(x * 1.44269504088896341f + 0.5f, VI), V);
  n = n > x * 1.44269504088896341f + 0.5f ? n - 1.0f : n;
#endif
  const V r = x - n * 0.693359375f + n * 2.12194440e-4f;
  V p = r * (1.0f / 720) + 1.0f / 120;
  p = p * r + 1.0f / 24;
  p = p * r + 1.0f / 6;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const VI bits = (__builtin_convertvector(n, VI) + 127) << 23;
  V scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return p * scale;
}

inline V silu(V z) { return z * vrcp(1.0f + vexp(-z)); }

enum Kind { SCATTERED, CONSECUTIVE, CONSTANT };

// The indices of a block (lanes past cnt repeat lane 0, so every lane reads valid rows).
struct Index {
  int64_t at[W];
  int kind;
};

inline Index block_index(const int64_t* idx, int cnt) {
  Index b;
  for (int l = 0; l < W; ++l) b.at[l] = idx[l < cnt ? l : 0];
  bool consecutive = cnt == W, constant = cnt == W;
  for (int l = 1; l < W; ++l) {
    consecutive = consecutive && b.at[l] == b.at[0] + l;
    constant = constant && b.at[l] == b.at[0];
  }
  b.kind = constant ? CONSTANT : (consecutive ? CONSECUTIVE : SCATTERED);
  return b;
}

// acc[c] += P[c, index] per lane, P channel-major (H, N).
template <int H>
inline void gather_add(const float* P, int64_t N, const Index& b, V* acc) {
  if (b.kind == CONSTANT) {
    for (int c = 0; c < H; ++c) acc[c] += P[c * N + b.at[0]];
  } else if (b.kind == CONSECUTIVE) {
    for (int c = 0; c < H; ++c) acc[c] += loadu(P + c * N + b.at[0]);
  } else {
    for (int c = 0; c < H; ++c) {
      V v;
      for (int l = 0; l < W; ++l) v[l] = P[c * N + b.at[l]];
      acc[c] += v;
    }
  }
}

// Per-node aggregates, channel-major (H, N); any pointer may be null (not needed).
struct Agg {
  float *sum, *sq, *mx;
};

// Sums, squares and maxima of a run of blocks whose lanes all target one node.
template <int H>
struct Pending {
  int64_t target = -1;
  V sum[H], sq[H], mx[H];

  void flush(const Agg& a, int64_t N) {
    if (target < 0) return;
    for (int c = 0; c < H; ++c) {
      float s = 0.0f, q = 0.0f, m = -FLT_MAX;
      for (int l = 0; l < W; ++l) s += sum[c][l], q += sq[c][l], m = std::max(m, mx[c][l]);
      if (a.sum) a.sum[c * N + target] += s;
      if (a.sq) a.sq[c * N + target] += q;
      if (a.mx) a.mx[c * N + target] = std::max(a.mx[c * N + target], m);
    }
    target = -1;
  }
};

template <int H>
inline void scatter(const Agg& a, int64_t N, const Index& b, int cnt, const V* m, Pending<H>& p) {
  if (b.kind == CONSTANT) {
    if (p.target != b.at[0]) {
      p.flush(a, N);
      p.target = b.at[0];
      for (int c = 0; c < H; ++c) p.sum[c] = p.sq[c] = V{}, p.mx[c] = splat(-FLT_MAX);
    }
    if (a.sum)
      for (int c = 0; c < H; ++c) p.sum[c] += m[c];
    if (a.sq)
      for (int c = 0; c < H; ++c) p.sq[c] += m[c] * m[c];
    if (a.mx)
      for (int c = 0; c < H; ++c) p.mx[c] = vmax(p.mx[c], m[c]);
  } else if (b.kind == CONSECUTIVE) {
    const int64_t t = b.at[0];
    for (int c = 0; c < H; ++c) {
      if (a.sum) storeu(a.sum + c * N + t, loadu(a.sum + c * N + t) + m[c]);
      if (a.sq) storeu(a.sq + c * N + t, loadu(a.sq + c * N + t) + m[c] * m[c]);
      if (a.mx) storeu(a.mx + c * N + t, vmax(loadu(a.mx + c * N + t), m[c]));
    }
  } else {
    for (int l = 0; l < cnt; ++l)
      for (int c = 0; c < H; ++c) {
        const int64_t at = c * N + b.at[l];
        const float v = m[c][l];
        if (a.sum) a.sum[at] += v;
        if (a.sq) a.sq[at] += v * v;
        if (a.mx) a.mx[at] = std::max(a.mx[at], v);
      }
  }
}

// Weights are splatted into vectors once per call, so that every product reads its weight as
// the memory operand of an FMA (a broadcast per product would cost as much as the product).
template <int N>
struct Splat {
  V v[N];
  void set(const float* a) {
    for (int i = 0; i < N; ++i) v[i] = splat(a[i]);
  }
};

template <int H>
inline void layer_norm(const V* x, const Splat<H>& g, const Splat<H>& b, float eps, V* y) {
  V mean = V{}, var = V{};
  for (int c = 0; c < H; ++c) mean += x[c];
  mean *= 1.0f / H;
  for (int c = 0; c < H; ++c) {
    const V d = x[c] - mean;
    var += d * d;
  }
  const V r = vrsqrt(var * (1.0f / H) + eps);
  for (int c = 0; c < H; ++c) y[c] = (x[c] - mean) * r * g.v[c] + b.v[c];
}

// y[o] = b[o] + sum_c w[o, c] x[c] (w row-major H x H).
template <int H>
inline void dense(const Splat<H * H>& w, const Splat<H>& b, const V* x, V* y) {
  for (int o = 0; o < H; ++o) {
    V acc = b.v[o];
    for (int c = 0; c < H; ++c) acc += w.v[o * H + c] * x[c];
    y[o] = acc;
  }
}

// A two-layer SiLU MLP whose first layer's node blocks are already in z (the gathered node
// terms): out = W2 silu(z + W1 x + b1) + b2.
struct Mlp {
  const float *w1, *b1, *w2, *b2;
};

template <int H>
struct MlpV {
  Splat<H * H> w1, w2;
  Splat<H> b1, b2;
  explicit MlpV(const Mlp& f) { w1.set(f.w1), b1.set(f.b1), w2.set(f.w2), b2.set(f.b2); }
};

template <int H>
inline void mlp(const MlpV<H>& f, const V* x, V* z, V* out) {
  V t[H];
  dense<H>(f.w1, f.b1, x, t);
  for (int c = 0; c < H; ++c) z[c] = silu(z[c] + t[c]);
  dense<H>(f.w2, f.b2, z, out);
}

inline void load_edges(const float* e, int cnt, V* dst, int H, int64_t stride) {
  for (int c = 0; c < H; ++c) {
    if (cnt == W) {
      dst[c] = loadu(e + c * stride);
    } else {
      float pad[W] = {};
      std::memcpy(pad, e + c * stride, sizeof(float) * cnt);
      dst[c] = loadu(pad);
    }
  }
}

inline void store_lanes(float* dst, V v, int cnt) {
  if (cnt == W) {
    storeu(dst, v);
  } else {
    float pad[W];
    storeu(pad, v);
    std::memcpy(dst, pad, sizeof(float) * cnt);
  }
}

struct Segment {
  int64_t begin, end, width, value_start;
  const float *raw, *w, *cst;  // encoder (first layer): raw (R, count * width), weights H x (width R), constant H
  const float *pw, *pb;        // head: projection width x H and its bias
};

struct Layer {
  const int64_t *src, *dst;
  float* e;  // (H, E) edge features
  int64_t E, N;
  int R;
  bool first;
  const float *ln_e_g, *ln_e_b, *ln_m_g, *ln_m_b;
  float eps_e, eps_m;
  const float *p_src, *p_dst, *p_in, *p_out;
  Mlp edge, in, out;
  Agg into, out_of;
};

// The encoder's edge features of a block of a segment's edges (local indices i0 .. i0 + cnt).
template <int H>
inline void encode(const Segment& s, int R, int64_t i0, int cnt, V* e) {
  for (int o = 0; o < H; ++o) e[o] = splat(s.cst[o]);
  if (s.width == 0) return;
  const int64_t count = s.end - s.begin, n = count * s.width;
  const int64_t wr = s.width * R;
  for (int64_t j = 0; j < s.width; ++j)
    for (int c = 0; c < R; ++c) {
      V x;
      const float* row = s.raw + c * n + j;
      if (s.width == 1 && cnt == W) {
        x = loadu(row + i0);
      } else {
        for (int l = 0; l < W; ++l) x[l] = row[std::min<int64_t>(i0 + l, count - 1) * s.width];
      }
      const float* w = s.w + j * R + c;
      for (int o = 0; o < H; ++o) e[o] += w[o * wr] * x;
    }
}

template <int H>
void run_layer(const Layer& L, const Segment* segs, int64_t nseg) {
  Pending<H> p_in, p_out;
  const MlpV<H> edge(L.edge), in(L.in), out(L.out);
  Splat<H> ln_e_g, ln_e_b, ln_m_g, ln_m_b;
  ln_e_g.set(L.ln_e_g), ln_e_b.set(L.ln_e_b), ln_m_g.set(L.ln_m_g), ln_m_b.set(L.ln_m_b);
  for (int64_t q = 0; q < nseg; ++q) {
    const Segment& s = segs[q];
    for (int64_t i = s.begin; i < s.end; i += W) {
      const int cnt = (int)std::min<int64_t>(W, s.end - i);
      const Index bs = block_index(L.src + i, cnt), bd = block_index(L.dst + i, cnt);
      V e[H], x[H], z[H], m[H];
      if (L.first)
        encode<H>(s, L.R, i - s.begin, cnt, e);
      else
        load_edges(L.e + i, cnt, e, H, L.E);
      // edge update: e += MLP([h_src, h_dst, LN(e)])
      layer_norm<H>(e, ln_e_g, ln_e_b, L.eps_e, x);
      for (int c = 0; c < H; ++c) z[c] = V{};
      gather_add<H>(L.p_src, L.N, bs, z);
      gather_add<H>(L.p_dst, L.N, bd, z);
      mlp<H>(edge, x, z, m);
      for (int c = 0; c < H; ++c) {
        e[c] += m[c];
        store_lanes(L.e + c * L.E + i, e[c], cnt);
      }
      // messages of LN(e): from the source into the target, and from the target back to the source
      layer_norm<H>(e, ln_m_g, ln_m_b, L.eps_m, x);
      for (int c = 0; c < H; ++c) z[c] = V{};
      gather_add<H>(L.p_in, L.N, bs, z);
      mlp<H>(in, x, z, m);
      scatter<H>(L.into, L.N, bd, cnt, m, p_in);
      for (int c = 0; c < H; ++c) z[c] = V{};
      gather_add<H>(L.p_out, L.N, bd, z);
      mlp<H>(out, x, z, m);
      scatter<H>(L.out_of, L.N, bs, cnt, m, p_out);
    }
  }
  p_in.flush(L.into, L.N);
  p_out.flush(L.out_of, L.N);
}

struct Head {
  const int64_t *src, *dst;
  const float* e;
  int64_t E, N;
  const float *ln_g, *ln_b;
  float eps;
  const float *p_src, *p_dst;
  Mlp f;
  float* values;
};

template <int H>
void run_head(const Head& hd, const Segment* segs, int64_t nseg) {
  const MlpV<H> f(hd.f);
  Splat<H> ln_g, ln_b;
  ln_g.set(hd.ln_g), ln_b.set(hd.ln_b);
  for (int64_t q = 0; q < nseg; ++q) {
    const Segment& s = segs[q];
    if (s.width == 0) continue;
    for (int64_t i = s.begin; i < s.end; i += W) {
      const int cnt = (int)std::min<int64_t>(W, s.end - i);
      const Index bs = block_index(hd.src + i, cnt), bd = block_index(hd.dst + i, cnt);
      V e[H], x[H], z[H], y[H];
      load_edges(hd.e + i, cnt, e, H, hd.E);
      layer_norm<H>(e, ln_g, ln_b, hd.eps, x);
      for (int c = 0; c < H; ++c) z[c] = V{};
      gather_add<H>(hd.p_src, hd.N, bs, z);
      gather_add<H>(hd.p_dst, hd.N, bd, z);
      mlp<H>(f, x, z, y);
      float* out = hd.values + s.value_start + (i - s.begin) * s.width;
      for (int64_t j = 0; j < s.width; ++j) {
        V v = splat(s.pb[j]);
        for (int c = 0; c < H; ++c) v += s.pw[j * H + c] * y[c];
        if (s.width == 1) {
          store_lanes(out, v, cnt);
        } else {
          for (int l = 0; l < cnt; ++l) out[l * s.width + j] = v[l];
        }
      }
    }
  }
}

const float* f(void* const*& pt) { return (const float*)*pt++; }

Mlp read_mlp(void* const*& pt) {
  Mlp m;
  m.w1 = f(pt), m.b1 = f(pt), m.w2 = f(pt), m.b2 = f(pt);
  return m;
}

Agg read_agg(void* const*& pt) {
  Agg a;
  a.sum = (float*)*pt++, a.sq = (float*)*pt++, a.mx = (float*)*pt++;
  return a;
}

template <class Fn>
bool dispatch(int64_t H, Fn&& fn) {
  switch (H) {
    case 4: fn(std::integral_constant<int, 4>{}); return true;
    case 8: fn(std::integral_constant<int, 8>{}); return true;
    case 16: fn(std::integral_constant<int, 16>{}); return true;
    case 32: fn(std::integral_constant<int, 32>{}); return true;
    default: return false;
  }
}

}  // namespace

extern "C" {

// Hidden widths this build serves (0-terminated) and the most raw channels.
void ws_lgraph_limits(int64_t* out) {
  out[0] = 4, out[1] = 8, out[2] = 16, out[3] = 32, out[4] = 0, out[5] = MAXR;
}

// One MPNN layer (and, when first, the encoder). ints: H, R, E, N, first, nseg, then per segment
// begin, end, width. reals: LayerNorm eps of e and of the messages. ptrs: src, dst, e, then
// (first) per segment raw, weights, constant; LN_e gain, bias; LN_m gain, bias; node terms
// p_src, p_dst, p_in, p_out; MLPs edge, in, out (w1, b1, w2, b2 each); aggregates into the
// target (sum, sq, max), out of the source (sum, sq, max).
int64_t ws_lgraph_layer(const int64_t* ints, const double* reals, void* const* ptrs) {
  const int64_t H = ints[0], nseg = ints[5];
  Layer L;
  L.R = (int)ints[1], L.E = ints[2], L.N = ints[3], L.first = ints[4] != 0;
  L.eps_e = (float)reals[0], L.eps_m = (float)reals[1];
  void* const* pt = ptrs;
  L.src = (const int64_t*)*pt++, L.dst = (const int64_t*)*pt++, L.e = (float*)*pt++;
  std::vector<Segment> segs(nseg);
  for (int64_t q = 0; q < nseg; ++q) {
    Segment& s = segs[q];
    s.begin = ints[6 + 3 * q], s.end = ints[7 + 3 * q], s.width = ints[8 + 3 * q], s.value_start = 0;
    s.raw = s.w = s.cst = s.pw = s.pb = nullptr;
    if (L.first) s.raw = f(pt), s.w = f(pt), s.cst = f(pt);
  }
  L.ln_e_g = f(pt), L.ln_e_b = f(pt), L.ln_m_g = f(pt), L.ln_m_b = f(pt);
  L.p_src = f(pt), L.p_dst = f(pt), L.p_in = f(pt), L.p_out = f(pt);
  L.edge = read_mlp(pt), L.in = read_mlp(pt), L.out = read_mlp(pt);
  L.into = read_agg(pt), L.out_of = read_agg(pt);
  const bool ok = L.R <= MAXR && dispatch(H, [&](auto h) { run_layer<decltype(h)::value>(L, segs.data(), nseg); });
  return ok ? 0 : 1;
}

// The head. ints: H, E, N, nseg, then per segment begin, end, width, value start. reals: LN eps.
// ptrs: src, dst, e, LN gain, bias, node terms p_src, p_dst, MLP (w1, b1, w2, b2), values, then
// per segment projection weights, bias.
int64_t ws_lgraph_head(const int64_t* ints, const double* reals, void* const* ptrs) {
  const int64_t H = ints[0], nseg = ints[3];
  Head hd;
  hd.E = ints[1], hd.N = ints[2], hd.eps = (float)reals[0];
  void* const* pt = ptrs;
  hd.src = (const int64_t*)*pt++, hd.dst = (const int64_t*)*pt++, hd.e = f(pt);
  hd.ln_g = f(pt), hd.ln_b = f(pt), hd.p_src = f(pt), hd.p_dst = f(pt);
  hd.f = read_mlp(pt);
  hd.values = (float*)*pt++;
  std::vector<Segment> segs(nseg);
  for (int64_t q = 0; q < nseg; ++q) {
    Segment& s = segs[q];
    s.begin = ints[4 + 4 * q], s.end = ints[5 + 4 * q], s.width = ints[6 + 4 * q], s.value_start = ints[7 + 4 * q];
    s.raw = s.w = s.cst = nullptr;
    s.pw = f(pt), s.pb = f(pt);
  }
  const bool ok = dispatch(H, [&](auto h) { run_head<decltype(h)::value>(hd, segs.data(), nseg); });
  return ok ? 0 : 1;
}

}  // extern "C"
