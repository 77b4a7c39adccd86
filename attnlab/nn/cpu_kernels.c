/* The small operations of a one-token decode step, one call each (see attnlab/nn/cpu_kernels.py).

   At batch 1 a decode step's norms, rotary positions, KV-cache write and attention over one query
   are a few thousand flops each; as torch ops they cost more in dispatch than in arithmetic. Here
   each group is one loop over fp32 rows, in the order the torch ops compute it:

     rms_norm    x += delta (the residual add, when delta is given); out = x * rsqrt(mean(x^2) + eps) * w
                 (Zhang & Sennrich 2019, arXiv:1910.07467)
     silu_mul    out = silu(gate) * up, silu(g) = g / (1 + exp(-g))   (SwiGLU, arXiv:2002.05202)
     attend_one  rotary positions on the new query and key (RoFormer's "half" pairing, i with
                 i + D/2, arXiv:2104.09864), key and value written to the cache at `pos`, then
                 softmax(q K^T / sqrt(D)) V over cache positions 0..pos for every query head, each
                 key/value head serving a group of query heads (arXiv:2305.13245).

   Built with -ffp-contract=off: x * cos + rotate_half(x) * sin rounds each product as torch does,
   so the rotated keys in the cache are bit for bit the torch path's. Sums (norms, scores) run in
   another order than torch's reductions: differences of a few ulp. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* GCC/Clang vector types: one AVX-512 register, or two AVX2 ones, or four SSE ones, per the target. */
typedef float f16 __attribute__((vector_size(64)));
typedef int32_t i16 __attribute__((vector_size(64)));

static inline f16 load16(const float *p) {
    f16 v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* The sum of a vector's 16 lanes, as a tree (8 + 8, then 4 + 4, ...). */
typedef float f8 __attribute__((vector_size(32)));
typedef float f4 __attribute__((vector_size(16)));

static inline float sum16(f16 v) {
    f8 h8[2];
    memcpy(h8, &v, sizeof v);
    f8 a = h8[0] + h8[1];
    f4 h4[2];
    memcpy(h4, &a, sizeof a);
    f4 b = h4[0] + h4[1];
    return (b[0] + b[2]) + (b[1] + b[3]);
}

static float dot(const float *a, const float *b, int64_t n) {
    f16 acc = {0};
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) acc += load16(a + i) * load16(b + i);
    float s = sum16(acc);
    for (; i < n; i++) s += a[i] * b[i];
    return s;
}

/* x, out: (rows, m); w: (m). delta: (rows, m) added to x in place first, or NULL. */
void rms_norm(float *x, const float *delta, const float *w, int64_t rows, int64_t m, float eps, float *out) {
    for (int64_t r = 0; r < rows; r++) {
        float *xr = x + r * m, *o = out + r * m;
        if (delta) {
            const float *dr = delta + r * m;
            for (int64_t i = 0; i < m; i++) xr[i] += dr[i];
        }
        float inv = 1.0f / sqrtf(dot(xr, xr, m) / (float)m + eps);
        for (int64_t i = 0; i < m; i++) o[i] = (xr[i] * inv) * w[i];
    }
}

void silu_mul(const float *gate, const float *up, int64_t n, float *out) {
    for (int64_t i = 0; i < n; i++) out[i] = gate[i] / (1.0f + expf(-gate[i])) * up[i];
}

/* Rotate one head vector (d) by the position's angles: out = x * cos + rotate_half(x) * sin. */
static void rotate(const float *x, const float *cos_, const float *sin_, int64_t d, float *out) {
    int64_t h = d / 2;
    for (int64_t i = 0; i < h; i++) out[i] = x[i] * cos_[i] + (-x[i + h]) * sin_[i];
    for (int64_t i = h; i < d; i++) out[i] = x[i] * cos_[i] + x[i - h] * sin_[i];
}

/* e^x for 16 x in [-87, 0] (softmax after subtracting the max): x = n ln2 + r, |r| <= ln2 / 2, e^r by
   Cephes' expf polynomial (relative error ~1e-7, as libm's expf), 2^n put into the exponent bits. */
static inline f16 exp_nonpositive(f16 x) {
    f16 n = __builtin_convertvector(__builtin_convertvector(x * 1.44269504088896341f - 0.5f, i16), f16);
    f16 r = x - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    f16 p = r * 1.9875691500e-4f + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    i16 bits = (__builtin_convertvector(n, i16) + 127) << 23;
    f16 scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

/* softmax(q K^T * scale) V for the `group` queries q (group, d) of one key/value head over its n cached
   rows K, V (n, d); p: (group, n) scratch; c: (group, d) out. Inlined with d = 64 as a constant, so the
   compiler keeps a row of accumulators in registers. */
static inline __attribute__((always_inline)) void attend_group(
        const float *restrict q, const float *restrict K, const float *restrict V, int64_t n, int64_t group,
        const int64_t d, float scale, float *restrict p, float *restrict c) {
    const int64_t ns = (n + 15) / 16 * 16;  /* p's row stride: whole vectors */
    for (int64_t s = 0; s < n; s++)
        for (int64_t j = 0; j < group; j++) p[j * ns + s] = dot(q + j * d, K + s * d, d) * scale;
    for (int64_t j = 0; j < group; j++) {
        float *pj = p + j * ns, top = -INFINITY, sum = 0.0f;
        for (int64_t s = 0; s < n; s++) top = pj[s] > top ? pj[s] : top;
        for (int64_t s = 0; s < ns; s++)  /* e^-87 ~ 1e-38: below, 0 would do as well */
            pj[s] = s >= n || pj[s] - top < -87.0f ? -87.0f : pj[s] - top;
        for (int64_t s = 0; s < n; s += 16) {
            f16 e = exp_nonpositive(load16(pj + s));
            memcpy(pj + s, &e, sizeof e);
        }
        for (int64_t s = 0; s < n; s++) sum += pj[s];
        float inv = 1.0f / sum, acc[256];
        for (int64_t i = 0; i < d; i++) acc[i] = 0.0f;
        for (int64_t s = 0; s < n; s++) {
            const float w = pj[s] * inv, *vs = V + s * d;
            for (int64_t i = 0; i < d; i++) acc[i] += w * vs[i];
        }
        for (int64_t i = 0; i < d; i++) c[j * d + i] = acc[i];
    }
}

/* qkv: (batch, (heads + 2 kv_heads) d), each row [q heads | k heads | v heads] (the fused projection).
   cos_, sin_: (d) for this position, or NULL (no rotary positions).
   keys, values: the caches, (batch, kv_heads, max_len, d); position `pos` is written.
   ctx: (batch, heads d), the context of each query head, heads concatenated.
   The query heads of one key/value head are done together, so each cached key and value row is
   read once per group. */
void attend_one(const float *qkv, int64_t batch, int64_t heads, int64_t kv_heads, int64_t d,
                const float *cos_, const float *sin_, float *keys, float *values, int64_t max_len,
                int64_t pos, float *ctx) {
    int64_t width = (heads + 2 * kv_heads) * d, group = heads / kv_heads, n = pos + 1;
    float scale = 1.0f / sqrtf((float)d);
    float *q = malloc(sizeof(float) * group * (d + n + 16));  /* see attend_group */  /* the group's rotated queries, then scores */
    float *p = q + group * d;
    for (int64_t b = 0; b < batch; b++) {
        const float *row = qkv + b * width;
        for (int64_t g = 0; g < kv_heads; g++) {
            int64_t at = ((b * kv_heads + g) * max_len + pos) * d;
            const float *k = row + (heads + g) * d, *v = row + (heads + kv_heads + g) * d;
            if (cos_) rotate(k, cos_, sin_, d, keys + at);
            else for (int64_t i = 0; i < d; i++) keys[at + i] = k[i];
            for (int64_t i = 0; i < d; i++) values[at + i] = v[i];
            const float *K = keys + (b * kv_heads + g) * max_len * d;
            const float *V = values + (b * kv_heads + g) * max_len * d;
            for (int64_t j = 0; j < group; j++) {
                const float *x = row + (g * group + j) * d;
                if (cos_) rotate(x, cos_, sin_, d, q + j * d);
                else for (int64_t i = 0; i < d; i++) q[j * d + i] = x[i];
            }
            if (d == 64) attend_group(q, K, V, n, group, 64, scale, p, ctx + b * heads * d + g * group * d);
            else attend_group(q, K, V, n, group, d, scale, p, ctx + b * heads * d + g * group * d);
        }
    }
    free(q);
}

/* Greedy decoding's pick: out[r] = the first index of row r's largest value (torch.argmax's choice),
   x (rows, n), n < 2^31. Returns 1 when a row holds a NaN (out is then unset: the caller's torch path
   names the error), else 0. One vector pass: each lane keeps its largest value and where it first
   saw it, then the lowest such index among the lanes that hold the row's max; ~10x faster than
   torch's argmax plus the gather that checks the pick. */
int argmax_rows(const float *x, int64_t rows, int64_t n, int64_t *out) {
    const i16 lanes = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
    for (int64_t r = 0; r < rows; r++) {
        const float *row = x + r * n;
        float best = -INFINITY;
        int64_t at = 0, i = 0;
        if (n >= 16) {
            f16 top = load16(row);
            i16 where = lanes, nan = {0};
            for (; i + 16 <= n; i += 16) {
                f16 v = load16(row + i);
                i16 larger = v > top;  /* strict: a lane keeps the first index of its max */
                nan |= v != v;
                top = (f16)(((i16)v & larger) | ((i16)top & ~larger));  /* vector casts: the same bits */
                where = ((lanes + (int32_t)i) & larger) | (where & ~larger);
            }
            at = n;
            for (int j = 0; j < 16; j++) {
                if (nan[j]) return 1;
                if (top[j] > best || (top[j] == best && where[j] < at)) { best = top[j]; at = where[j]; }
            }
        }
        for (; i < n; i++) {  /* the tail, after every vector index */
            if (row[i] != row[i]) return 1;
            if (row[i] > best || (i == 0 && row[i] == best)) { best = row[i]; at = i; }
        }
        out[r] = at < n ? at : 0;  /* every value -inf: index 0, as torch */
    }
    return 0;
}

/* The softmax of bf16 attention scores, for bf16 inference (attnlab/nn/attention.py):
   probs = softmax(scores * scale) over each row's visible keys, computed in fp32, rounded to bf16
   (round to nearest even, as torch's .to(torch.bfloat16)); hidden keys get 0, a row with no
   visible key is all 0.

   scores, out: (rows, k_len) bf16 bits, rows = batch * heads * q_len, row r the query r % q_len of
   sequence r / per_seq (per_seq = heads * q_len).
   key_mask: (batch, k_len), nonzero = visible, or NULL (every key).
   causal: query t sees keys j <= t + k_len - q_len (bottom-right aligned); the keys after a row's
   last visible one are not read at all, which halves a causal prefill's work. */
typedef uint32_t u16v __attribute__((vector_size(64)));
typedef uint16_t h16 __attribute__((vector_size(32)));

static inline f16 bf16_load16(const uint16_t *p) {
    h16 h;
    memcpy(&h, p, sizeof h);
    u16v wide = __builtin_convertvector(h, u16v) << 16;
    f16 v;
    memcpy(&v, &wide, sizeof v);
    return v;
}

static inline void bf16_store16(uint16_t *p, f16 v) {
    u16v u;
    memcpy(&u, &v, sizeof u);
    u = (u + 0x7FFFu + ((u >> 16) & 1u)) >> 16;  /* round to nearest even (finite values) */
    h16 h = __builtin_convertvector(u, h16);
    memcpy(p, &h, sizeof h);
}

void softmax_bf16(const uint16_t *scores, int64_t rows, int64_t q_len, int64_t k_len, int64_t per_seq,
                  float scale, const uint8_t *key_mask, int causal, uint16_t *out, int threads) {
    const int64_t padded = (k_len + 15) / 16 * 16;
#pragma omp parallel num_threads(threads) if (threads > 1)
    {
        float *x = malloc(sizeof(float) * padded);
        uint16_t *tail = malloc(sizeof(uint16_t) * padded);
#pragma omp for schedule(static)
        for (int64_t r = 0; r < rows; r++) {
            const uint16_t *s = scores + r * k_len;
            uint16_t *o = out + r * k_len;
            const uint8_t *visible = key_mask ? key_mask + (r / per_seq) * k_len : NULL;
            int64_t n = k_len;  /* keys at n and after are hidden (causal) */
            if (causal) {
                int64_t last = r % q_len + k_len - q_len;
                n = last < 0 ? 0 : (last + 1 < k_len ? last + 1 : k_len);
            }
            const int64_t vn = (n + 15) / 16 * 16;
            /* x = scores * scale, -inf where hidden, and the row's max lane by lane (a scalar max is
               a chain of dependent instructions); whole vectors, the last one read from a copy */
            f16 tops = (f16){0} - INFINITY;
            for (int64_t j = 0; j < vn; j += 16) {
                const uint16_t *from = s + j;
                if (j + 16 > n) {
                    memcpy(tail, from, sizeof(uint16_t) * (n - j));
                    from = tail;
                }
                f16 v = bf16_load16(from) * scale;
                i16 shown = (i16){0} - 1;
                if (j + 16 > n)
                    for (int64_t i = n - j; i < 16; i++) shown[i] = 0;
                if (visible)
                    for (int i = 0; i < 16 && j + i < n; i++) shown[i] &= -(int32_t)(visible[j + i] != 0);
                v = (f16)(((i16)v & shown) | ((i16)((f16){0} - INFINITY) & ~shown));
                i16 larger = v > tops;
                tops = (f16)(((i16)v & larger) | ((i16)tops & ~larger));
                memcpy(x + j, &v, sizeof v);
            }
            float top = tops[0];
            for (int i = 1; i < 16; i++) top = tops[i] > top ? tops[i] : top;
            if (top == -INFINITY) {  /* nothing visible */
                memset(o, 0, sizeof(uint16_t) * k_len);
                continue;
            }
            f16 total = {0};
            for (int64_t i = 0; i < vn; i += 16) {
                const f16 floor_ = (f16){0} - 87.0f;  /* e^-87 ~ 1e-38: lower exponents add nothing */
                f16 v = load16(x + i), d = v - top;
                i16 shown = v > -INFINITY, kept = d > floor_;  /* -inf - top is no number to use */
                d = (f16)(((i16)d & kept) | ((i16)floor_ & ~kept));
                f16 e = (f16)((i16)exp_nonpositive(d) & shown);
                memcpy(x + i, &e, sizeof e);
                total += e;
            }
            const float inv = 1.0f / sum16(total);
            int64_t j = 0;
            for (; j + 16 <= n; j += 16) bf16_store16(o + j, load16(x + j) * inv);
            if (j < n) {
                bf16_store16(tail, load16(x + j) * inv);
                memcpy(o + j, tail, sizeof(uint16_t) * (n - j));
                j = n;
            }
            if (n < k_len) memset(o + n, 0, sizeof(uint16_t) * (k_len - n));
        }
        free(x);
        free(tail);
    }
}
