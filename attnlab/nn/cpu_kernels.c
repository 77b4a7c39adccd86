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

#ifdef __AVX512F__
#include <immintrin.h>

/* e^x for x in [-87, 0], as exp_nonpositive (the same polynomial) but with fused multiply-adds and
   vscalefps for the 2^n: 12 instructions, not 22; the exponentials were a third of this kernel's time */
static inline __m512 exp512(__m512 x) {
    const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                          _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_fmadd_ps(_mm512_set1_ps(1.9875691500e-4f), r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    return _mm512_scalef_ps(p, n);
}

#define ROWS 8  /* queries done together: each repacked key or value block is loaded once for all */

/* The ROWS queries from t0, as both kernels take them: rows[r] = query t0 + r's row (past the end:
   the last row again, computed but not stored); shown[r] = the keys it sees (all, or causally up to
   t + k_len - q_len). Returns the most keys any of them sees. */
static inline int64_t row_group(int64_t t0, int64_t q_len, int64_t k_len, int causal, int64_t *rows,
                                int64_t *shown) {
    int64_t most = 0;
    for (int r = 0; r < ROWS; r++) {
        const int64_t t = t0 + r < q_len ? t0 + r : q_len - 1;
        int64_t n = k_len;
        if (causal) {
            const int64_t last = t + k_len - q_len;
            n = last < 0 ? 0 : (last + 1 < k_len ? last + 1 : k_len);
        }
        rows[r] = t;
        shown[r] = n;
        most = n > most ? n : most;
    }
    return most;
}

/* Where task = b * heads + h reads and writes (element offsets): query head h of sequence b, its
   key/value head h / (heads / kv_heads), its key mask row, and its context in (batch, q_len, heads, d) */
struct head_task { int64_t q, k, v, out; const uint8_t *visible; };

static inline struct head_task head_task(int64_t task, int64_t heads, int64_t kv_heads, int64_t q_len,
                                         int64_t k_len, int64_t d, const int64_t *q_stride,
                                         const int64_t *k_stride, const int64_t *v_stride,
                                         const uint8_t *key_mask) {
    const int64_t b = task / heads, h = task % heads, g = h / (heads / kv_heads);
    return (struct head_task){b * q_stride[0] + h * q_stride[1], b * k_stride[0] + g * k_stride[1],
                              b * v_stride[0] + g * v_stride[1], (b * q_len * heads + h) * d,
                              key_mask ? key_mask + b * k_len : NULL};
}

/* A block of 16 keys channel-major: kp[i * 16 + j] = key j's 32-bit word i (an fp32 channel, or a pair of
   bf16 channels), for the `words` words of each key from k, rows `row_bytes` apart (keys from `left` on
   are zeros): 16 x 16 transposes in unpacks and 128-bit lane shuffles */
static void pack_keys(const char *k, int64_t row_bytes, int64_t left, int64_t words, uint32_t *kp) {
    for (int64_t i0 = 0; i0 < words; i0 += 16) {
        const int width = words - i0 < 16 ? (int)(words - i0) : 16;
        const __mmask16 part = (__mmask16)((1u << width) - 1);
        __m512i r[16], t[16], u[16];
        for (int j = 0; j < 16; j++)
            r[j] = j < left ? _mm512_maskz_loadu_epi32(part, (const uint32_t *)(k + j * row_bytes) + i0)
                            : _mm512_setzero_si512();
        for (int j = 0; j < 16; j += 2) {  /* t[j] lane L: rows j, j+1 interleaved at words 4L, 4L+1 */
            t[j] = _mm512_unpacklo_epi32(r[j], r[j + 1]);
            t[j + 1] = _mm512_unpackhi_epi32(r[j], r[j + 1]);
        }
        for (int j = 0; j < 16; j += 4) {  /* u[j + c] lane L: rows j..j+3 at pair 4L + c */
            u[j] = _mm512_unpacklo_epi64(t[j], t[j + 2]);
            u[j + 1] = _mm512_unpackhi_epi64(t[j], t[j + 2]);
            u[j + 2] = _mm512_unpacklo_epi64(t[j + 1], t[j + 3]);
            u[j + 3] = _mm512_unpackhi_epi64(t[j + 1], t[j + 3]);
        }
        for (int c = 0; c < 4; c++) {  /* gather lane L of u[c], u[4 + c], u[8 + c], u[12 + c]: pair 4L + c */
            __m512i even_lo = _mm512_shuffle_i32x4(u[c], u[4 + c], 0x88), odd_lo = _mm512_shuffle_i32x4(u[c], u[4 + c], 0xDD);
            __m512i even_hi = _mm512_shuffle_i32x4(u[8 + c], u[12 + c], 0x88), odd_hi = _mm512_shuffle_i32x4(u[8 + c], u[12 + c], 0xDD);
            __m512i col[4] = {_mm512_shuffle_i32x4(even_lo, even_hi, 0x88), _mm512_shuffle_i32x4(odd_lo, odd_hi, 0x88),
                              _mm512_shuffle_i32x4(even_lo, even_hi, 0xDD), _mm512_shuffle_i32x4(odd_lo, odd_hi, 0xDD)};
            for (int L = 0; L < 4; L++)
                if (4 * L + c < width) _mm512_store_si512(kp + (i0 + 4 * L + c) * 16, col[L]);
        }
    }
}

/* One block of 16 keys' scores for ROWS queries: s[r][first..first + 16) = acc[r], -inf where hidden;
   tops[r] = the running maxima */
static inline __attribute__((always_inline)) void store_scores(const __m512 *acc, int64_t first, int64_t k_len,
                                                                const int64_t *shown, int causal,
                                                                const uint8_t *visible, float *s, int64_t padded,
                                                                __m512 *tops) {
    __mmask16 seen = first + 16 <= k_len ? 0xFFFF : (__mmask16)((1u << (k_len - first)) - 1);
    if (visible) {  /* keys visible to every query (the padding mask), not read past the row */
        __m128i bytes = _mm_maskz_loadu_epi8(seen, visible + first);
        seen = _mm_test_epi8_mask(bytes, bytes);
    }
    if (seen == 0xFFFF && (!causal || first + 16 <= shown[0])) {  /* shown[] rises with r: all visible */
        for (int r = 0; r < ROWS; r++) {
            _mm512_store_ps(s + r * padded + first, acc[r]);
            tops[r] = _mm512_max_ps(tops[r], acc[r]);
        }
        return;
    }
    for (int r = 0; r < ROWS; r++) {
        __mmask16 in = seen;
        if (causal)
            in &= first + 16 <= shown[r] ? 0xFFFF
                : (first >= shown[r] ? 0 : (__mmask16)((1u << (shown[r] - first)) - 1));
        __m512 x = _mm512_mask_mov_ps(_mm512_set1_ps(-INFINITY), in, acc[r]);
        _mm512_store_ps(s + r * padded + first, x);
        tops[r] = _mm512_max_ps(tops[r], x);
    }
}


/* The fp32 kernel's three steps, each a function of its own, as the bf16 kernel's below (see there why) */

/* acc + the dot products of a's and b's bf16 pairs (vdpbf16ps), as inline assembly on plain vector types:
   GCC 12 holds __m512bh operands in one register and spills the rest around every use */
static inline __attribute__((always_inline)) __m512 dot_pairs(__m512 acc, __m512i a, __m512i b) {
    __asm__("vdpbf16ps %2, %1, %0" : "+v"(acc) : "v"(a), "v"(b));
    return acc;
}

/* s[r][key] = q_r . k_key, -inf where hidden; top[r] = row r's largest. Keys and queries are 32-bit words:
   fp32 channels (FMAs; the scores are multiplied by `scale`) or, with `pairs`, pairs of bf16 channels
   (vdpbf16ps; the scores are left unscaled for the softmax to scale). The queries are read in place, one
   pointer a row: copying them into one block of ROWS columns measured 1.5x slower in fp32 */
static inline __attribute__((always_inline)) void scores_of_rows(
        const uint32_t *const *qr, const uint32_t *kp, int64_t words, int pairs, float scale, int64_t used,
        int64_t k_len, const int64_t *shown, int causal, const uint8_t *visible, float *s, int64_t padded,
        float *top) {
    __m512 tops[ROWS];
    for (int r = 0; r < ROWS; r++) tops[r] = _mm512_set1_ps(-INFINITY);
    for (int64_t b = 0; b < used; b += 2) {  /* two key blocks at once; kp has a zero block spare */
        __m512 acc[ROWS], acc2[ROWS];
        for (int r = 0; r < ROWS; r++) acc[r] = acc2[r] = _mm512_setzero_ps();
        const uint32_t *block = kp + b * words * 16, *next = block + words * 16;
        for (int64_t i = 0; i < words; i++) {
            __m512i keys = _mm512_load_si512(block + i * 16), more = _mm512_load_si512(next + i * 16);
            for (int r = 0; r < ROWS; r++) {
                __m512i query = _mm512_set1_epi32((int)qr[r][i]);
                if (pairs) {
                    acc[r] = dot_pairs(acc[r], keys, query);
                    acc2[r] = dot_pairs(acc2[r], more, query);
                } else {
                    acc[r] = _mm512_fmadd_ps(_mm512_castsi512_ps(keys), _mm512_castsi512_ps(query), acc[r]);
                    acc2[r] = _mm512_fmadd_ps(_mm512_castsi512_ps(more), _mm512_castsi512_ps(query), acc2[r]);
                }
            }
        }
        if (!pairs)
            for (int r = 0; r < ROWS; r++) {
                acc[r] = _mm512_mul_ps(acc[r], _mm512_set1_ps(scale));
                acc2[r] = _mm512_mul_ps(acc2[r], _mm512_set1_ps(scale));
            }
        store_scores(acc, b * 16, k_len, shown, causal, visible, s, padded, tops);
        if (b + 1 < used) store_scores(acc2, b * 16 + 16, k_len, shown, causal, visible, s, padded, tops);
    }
    for (int r = 0; r < ROWS; r++) top[r] = _mm512_reduce_max_ps(tops[r]);
}

/* The fp32 kernel's scores: scaled */
static __attribute__((noinline)) void row_scores_f32(const float *const *qr, const float *kp, int64_t d, int64_t used,
                                                     int64_t k_len, const int64_t *shown, int causal,
                                                     const uint8_t *visible, float scale, float *s,
                                                     int64_t padded, float *top) {
    scores_of_rows((const uint32_t *const *)qr, (const uint32_t *)kp, d, 0, scale, used, k_len, shown, causal,
                   visible, s, padded, top);
}

/* s[r] = exp(s[r] - top[r]) in place (0 where hidden); inv[r] = 1 / their sum (0: nothing visible) */
static __attribute__((noinline)) void row_softmax_f32(float *s, int64_t padded, int64_t used, const float *top,
                                                      float *inv) {
    for (int r = 0; r < ROWS; r++) {
        float *sr = s + r * padded;
        const __m512 shift = _mm512_set1_ps(top[r] == -INFINITY ? 0.0f : top[r]);
        __m512 total = _mm512_setzero_ps();
        for (int64_t b = 0; b < used; b++) {
            __m512 x = _mm512_load_ps(sr + b * 16);
            __mmask16 in = _mm512_cmp_ps_mask(x, _mm512_set1_ps(-INFINITY), _CMP_NEQ_OQ);
            __m512 dx = _mm512_max_ps(_mm512_sub_ps(x, shift), _mm512_set1_ps(-87.0f));
            __m512 e = _mm512_maskz_mov_ps(in, exp512(dx));
            total = _mm512_add_ps(total, e);
            _mm512_store_ps(sr + b * 16, e);
        }
        inv[r] = top[r] == -INFINITY ? 0.0f : 1.0f / _mm512_reduce_add_ps(total);
    }
}

/* out[r] = (sum over the steps of weight r's word . the value row's words) * inv[r], for rows below
   `rows`, 32 channels at a time. The weights are 32-bit words, row r's at weights + r * weight_row_bytes,
   one a step; the values a row of `d` words a step, value_row_bytes apart. fp32 (FMAs): a weight, one
   key's value row, the context stored in fp32; or, with `pairs` (vdpbf16ps), two keys' bf16 weights
   and their value rows interleaved per channel, the context rounded to bf16. */
static inline __attribute__((always_inline)) void context_of_rows(
        const char *weights, int64_t weight_row_bytes, const char *values, int64_t value_row_bytes, int64_t d,
        int64_t steps, int pairs, const float *inv, void *out, int64_t out_row, int64_t rows) {
    for (int64_t c0 = 0; c0 < d; c0 += 32) {
        const int width = d - c0 < 32 ? 1 : 2;
        __m512 acc[ROWS][2];
        for (int r = 0; r < ROWS; r++) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
        for (int64_t m = 0; m < steps; m++) {
            const uint32_t *row = (const uint32_t *)(values + m * value_row_bytes) + c0;
            __m512i vals = _mm512_loadu_si512(row), more = _mm512_loadu_si512(row + 16 * (width - 1));
            for (int r = 0; r < ROWS; r++) {
                uint32_t word;
                memcpy(&word, weights + r * weight_row_bytes + 4 * m, sizeof word);
                __m512i weight = _mm512_set1_epi32((int)word);
                if (pairs) {
                    acc[r][0] = dot_pairs(acc[r][0], vals, weight);
                    acc[r][1] = dot_pairs(acc[r][1], more, weight);
                } else {
                    acc[r][0] = _mm512_fmadd_ps(_mm512_castsi512_ps(vals), _mm512_castsi512_ps(weight), acc[r][0]);
                    acc[r][1] = _mm512_fmadd_ps(_mm512_castsi512_ps(more), _mm512_castsi512_ps(weight), acc[r][1]);
                }
            }
        }
        for (int r = 0; r < ROWS && r < rows; r++)
            for (int w = 0; w < width; w++) {
                const __m512 x = _mm512_mul_ps(acc[r][w], _mm512_set1_ps(inv[r]));
                if (pairs)
                    _mm256_storeu_si256((__m256i *)((uint16_t *)out + r * out_row + c0 + w * 16),
                                        (__m256i)_mm512_cvtneps_pbh(x));
                else
                    _mm512_storeu_ps((float *)out + r * out_row + c0 + w * 16, x);
            }
    }
}

/* The fp32 kernel's context: out[r] = (sum over the first `keys` keys of s[r][key] v_key) * inv[r],
   the values read in place; rows from `rows` on are not stored */
static __attribute__((noinline)) void row_context_f32(const float *s, int64_t padded, const float *v, int64_t v_row,
                                                      int64_t d, int64_t keys, const float *inv, float *out,
                                                      int64_t out_row, int64_t rows) {
    context_of_rows((const char *)s, padded * 4, (const char *)v, v_row * 4, d, keys, 0, inv, out, out_row, rows);
}

/* Attention for fp32 inference in one pass per head, on CPUs with AVX-512: the fp32 twin of attend_bf16
   below (same arguments, same layouts, same masks), with fused multiply-adds instead of vdpbf16ps.
   PyTorch's fused SDPA in fp32 multiplies blocks with its sgemm, which on AMD CPUs is MKL's AVX2 code.
   A head's keys are repacked once, 16 keys to a block, channel-major (kp[(block * d + i) * 16 + j] =
   key 16 block + j's channel i), so that one broadcast query channel meets 16 keys per FMA; values are
   read in place, a row per key. Scores, softmax and sums are fp32 throughout: only the order of the sums
   and the exponential's polynomial (exp512, within 2 ulp) differ from torch's. */
static void attend_head_f32(const float *q, const int64_t q_row, const float *k, int64_t k_row,
                            const float *v, int64_t v_row, int64_t q_len, int64_t k_len, int64_t d,
                            const uint8_t *visible, int causal, float scale, float *out, int64_t out_row,
                            float *kp, float *s) {
    const int64_t blocks = (k_len + 15) / 16, padded = blocks * 16;
    memset(kp + blocks * d * 16, 0, sizeof(float) * d * 16);  /* the spare block */
    for (int64_t b = 0; b < blocks; b++)
        pack_keys((const char *)(k + b * 16 * k_row), k_row * 4, k_len - b * 16, d, (uint32_t *)kp + b * d * 16);
    for (int64_t t0 = 0; t0 < q_len; t0 += ROWS) {
        int64_t rows[ROWS], shown[ROWS];
        const int64_t most = row_group(t0, q_len, k_len, causal, rows, shown);
        const float *qr[ROWS];
        for (int r = 0; r < ROWS; r++) qr[r] = q + rows[r] * q_row;
        float top[ROWS], inv[ROWS];
        const int64_t used = (most + 15) / 16;  /* key blocks any of the rows sees */
        row_scores_f32(qr, kp, d, used, k_len, shown, causal, visible, scale, s, padded, top);
        row_softmax_f32(s, padded, used, top, inv);
        row_context_f32(s, padded, v, v_row, d, most, inv, out + t0 * out_row, out_row, q_len - t0);
    }
}

int attend_f32_built(void) { return 1; }

int attend_f32(const float *q, const float *k, const float *v, int64_t batch, int64_t heads, int64_t kv_heads,
               int64_t q_len, int64_t k_len, int64_t d, const int64_t *q_stride, const int64_t *k_stride,
               const int64_t *v_stride, const uint8_t *key_mask, int causal, float scale, float *out,
               int threads) {
    if (d % 16 || d > 256 || heads % kv_heads) return -1;
    const int64_t padded = (k_len + 15) / 16 * 16;
#pragma omp parallel num_threads(threads) if (threads > 1)
    {
        float *kp = aligned_alloc(64, sizeof(float) * (size_t)(padded + 16) * d + 64);  /* + a spare block */
        float *s = aligned_alloc(64, sizeof(float) * ROWS * padded + 64);
#pragma omp for schedule(static)
        for (int64_t task = 0; task < batch * heads; task++) {
            const struct head_task at = head_task(task, heads, kv_heads, q_len, k_len, d, q_stride, k_stride,
                                                  v_stride, key_mask);
            attend_head_f32(q + at.q, q_stride[2], k + at.k, k_stride[2], v + at.v, v_stride[2], q_len, k_len,
                            d, at.visible, causal, scale, out + at.out, heads * d, kp, s);
        }
        free(kp);
        free(s);
    }
    return 0;
}
#else
int attend_f32_built(void) { return 0; }

int attend_f32(const float *q, const float *k, const float *v, int64_t batch, int64_t heads, int64_t kv_heads,
               int64_t q_len, int64_t k_len, int64_t d, const int64_t *q_stride, const int64_t *k_stride,
               const int64_t *v_stride, const uint8_t *key_mask, int causal, float scale, float *out,
               int threads) {
    (void)q; (void)k; (void)v; (void)batch; (void)heads; (void)kv_heads; (void)q_len; (void)k_len; (void)d;
    (void)q_stride; (void)k_stride; (void)v_stride; (void)key_mask; (void)causal; (void)scale; (void)out;
    (void)threads;
    return -1;
}
#endif

/* Attention for bf16 inference in one pass per head, on CPUs with AVX512-BF16 (Zen 4 and later, Intel
   Cooper Lake and later): context = softmax(q K^T * scale) V, read from q, k, v wherever they lie (the
   fused projection's output, a KV cache) and written in the (batch, q_len, heads, d) layout the output
   projection reads. The torch form is two bf16 matmuls around a softmax with a (B, H, T, S) score tensor
   between them, and copies of q, k, v into head-major order before them; here a head's keys and values
   are repacked once into the pair layout of vdpbf16ps (16 lanes, each the dot product of two bf16
   pairs, accumulated in fp32), its scores live in a row buffer of the thread, and a causal row stops
   at its last visible key.

   Arithmetic: scores in fp32 (the torch form rounds them to bf16 first), softmax in fp32 with an
   exponential good to 3e-6 (exp2_bf16: the probabilities are then rounded to bf16, 4e-3, for the
   second product), accumulated in fp32, the context rounded to bf16 (round to nearest even).

   q: (batch, heads, q_len, d) by q_stride (elements; the last dimension contiguous); k, v: (batch,
   kv_heads, k_len, d) by k_stride / v_stride, query head h reading key/value head h / (heads /
   kv_heads). key_mask: (batch, k_len), nonzero = visible, or NULL. causal: query t sees keys up to
   t + k_len - q_len. A row with no visible key gets a zero context. d: a multiple of 16, at most 256.
   Returns 0, or -1 where this build has no AVX512-BF16 or d is not served (nothing is written). */
#if defined(__AVX512BF16__) && defined(__AVX512F__)
/* vdpbf16ps takes ~6 cycles to give its sum and two can start a cycle: each loop keeps 16 independent
   sums (8 queries x 2 key blocks, or x 2 groups of 16 channels), not 4, which measured 1.5x slower */

/* The three steps for ROWS queries are separate functions so that each gets all 32 vector registers:
   inlined together, GCC kept the exponential's constants in registers through the context loop and
   spilled its value blocks instead. */

/* The bf16 kernel's scores: unscaled, the softmax scales */
static __attribute__((noinline)) void row_scores(const uint32_t *const *qr, const uint32_t *kp, int64_t pairs,
                                                 int64_t used, int64_t k_len, const int64_t *shown, int causal,
                                                 const uint8_t *visible, float *s, int64_t padded, float *top) {
    scores_of_rows(qr, kp, pairs, 1, 1.0f, used, k_len, shown, causal, visible, s, padded, top);
}

/* 2^x for x <= 0, to 3e-6 relative, and exactly 0 from about -150 down (-inf included, so hidden keys
   need no mask of their own): the probabilities it gives are rounded to bf16 (4e-3), so a degree-4
   polynomial on the fraction (fitted for relative error on [-1/2, 1/2]) serves where exp512 needs
   degree 6 and a two-step range reduction */
static inline __m512 exp2_bf16(__m512 x) {
    x = _mm512_max_ps(x, _mm512_set1_ps(-150.0f));
    const __m512 n = _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const __m512 f = _mm512_sub_ps(x, n);
    __m512 p = _mm512_fmadd_ps(_mm512_set1_ps(9.570102207362652e-3f), f, _mm512_set1_ps(5.591786280274391e-2f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(2.40247443318367e-1f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(6.931217908859253e-1f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(9.999992847442627e-1f));
    return _mm512_scalef_ps(p, n);
}

/* p[r] = e^((s[r] - top[r]) scale) = 2^(s[r] c - top[r] c), c = scale log2(e), as bf16 (0 where s is
   -inf: hidden); inv[r] = 1 / their sum (0: nothing visible). The division is applied to the context
   instead, one multiply a channel */
static __attribute__((noinline)) void row_softmax(const float *s, int64_t padded, int64_t used, const float *top,
                                                  float scale, uint16_t *p, float *inv) {
    const __m512 c = _mm512_set1_ps(scale * 1.44269504088896341f);
    for (int r = 0; r < ROWS; r++) {
        const float *sr = s + r * padded;
        uint16_t *pr = p + r * padded;
        const __m512 shift = _mm512_mul_ps(_mm512_set1_ps(top[r] == -INFINITY ? 0.0f : top[r]), c);
        __m512 total = _mm512_setzero_ps();
        int64_t b = 0;
        for (; b + 2 <= used; b += 2) {  /* two blocks to bf16 in one instruction */
            __m512 e0 = exp2_bf16(_mm512_fmsub_ps(_mm512_load_ps(sr + b * 16), c, shift));
            __m512 e1 = exp2_bf16(_mm512_fmsub_ps(_mm512_load_ps(sr + b * 16 + 16), c, shift));
            total = _mm512_add_ps(total, _mm512_add_ps(e0, e1));
            _mm512_storeu_si512(pr + b * 16, (__m512i)_mm512_cvtne2ps_pbh(e1, e0));
        }
        if (b < used) {
            __m512 e0 = exp2_bf16(_mm512_fmsub_ps(_mm512_load_ps(sr + b * 16), c, shift));
            total = _mm512_add_ps(total, e0);
            _mm256_store_si256((__m256i *)(pr + b * 16), (__m256i)_mm512_cvtneps_pbh(e0));
        }
        inv[r] = top[r] == -INFINITY ? 0.0f : 1.0f / _mm512_reduce_add_ps(total);
    }
}

/* The bf16 kernel's context: out[r] = (sum over key pairs of p[r]'s pairs . the value pairs) * inv[r],
   rounded to bf16; rows from `rows` on are not stored */
static __attribute__((noinline)) void row_context(const uint16_t *p, int64_t padded, const uint32_t *vp, int64_t d,
                                                  int64_t key_pairs, const float *inv, uint16_t *out,
                                                  int64_t out_row, int64_t rows) {
    context_of_rows((const char *)p, padded * 2, (const char *)vp, d * 4, d, key_pairs, 1, inv, out, out_row, rows);
}

/* values: to[c] = (v[0][c], v[1][c]), the pair of keys at v interleaved per channel (a key at or past
   `left` is zero) */
static void pack_values(const uint16_t *v, int64_t v_row, int64_t left, int64_t d, uint32_t *to) {
    const __m512i order = _mm512_set_epi16(47, 15, 46, 14, 45, 13, 44, 12, 43, 11, 42, 10, 41, 9, 40, 8,
                                           39, 7, 38, 6, 37, 5, 36, 4, 35, 3, 34, 2, 33, 1, 32, 0);
    for (int64_t c = 0; c < d; c += 16) {
        __m512i even = left > 0 ? _mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)(v + c)))
                                : _mm512_setzero_si512();
        __m512i odd = left > 1 ? _mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)(v + v_row + c)))
                               : _mm512_setzero_si512();
        _mm512_storeu_si512(to + c, _mm512_permutex2var_epi16(even, order, odd));
    }
}

static void attend_head_bf16(const uint16_t *q, const int64_t q_row, const uint16_t *k, int64_t k_row,
                             const uint16_t *v, int64_t v_row, int64_t q_len, int64_t k_len, int64_t d,
                             const uint8_t *visible, int causal, float scale, uint16_t *out, int64_t out_row,
                             uint32_t *kp, uint32_t *vp, float *s, uint16_t *p) {
    const int64_t blocks = (k_len + 15) / 16, pairs = d / 2, padded = blocks * 16;
    memset(kp + blocks * pairs * 16, 0, sizeof(uint32_t) * pairs * 16);  /* the spare block */
    for (int64_t b = 0; b < blocks; b++) pack_keys((const char *)(k + b * 16 * k_row), k_row * 2, k_len - b * 16, pairs, kp + b * pairs * 16);
    for (int64_t m = 0; m < padded / 2; m++) pack_values(v + 2 * m * v_row, v_row, k_len - 2 * m, d, vp + m * d);
    for (int64_t t0 = 0; t0 < q_len; t0 += ROWS) {
        int64_t rows[ROWS], shown[ROWS];
        const int64_t most = row_group(t0, q_len, k_len, causal, rows, shown);
        const uint32_t *qr[ROWS];
        for (int r = 0; r < ROWS; r++) qr[r] = (const uint32_t *)(q + rows[r] * q_row);
        const int64_t used = (most + 15) / 16;  /* key blocks any of the rows sees */
        float top[ROWS], inv[ROWS];
        row_scores(qr, kp, pairs, used, k_len, shown, causal, visible, s, padded, top);
        row_softmax(s, padded, used, top, scale, p, inv);
        row_context(p, padded, vp, d, used * 8, inv, out + t0 * out_row, out_row, q_len - t0);
    }
}

int attend_bf16_built(void) { return 1; }

int attend_bf16(const uint16_t *q, const uint16_t *k, const uint16_t *v, int64_t batch, int64_t heads,
                int64_t kv_heads, int64_t q_len, int64_t k_len, int64_t d, const int64_t *q_stride,
                const int64_t *k_stride, const int64_t *v_stride, const uint8_t *key_mask, int causal,
                float scale, uint16_t *out, int threads) {
    if (d % 16 || d > 256 || heads % kv_heads) return -1;
    const int64_t padded = (k_len + 15) / 16 * 16;
#pragma omp parallel num_threads(threads) if (threads > 1)
    {
        uint32_t *kp = aligned_alloc(64, (size_t)(padded + 16) * d * 2 + 64);  /* + a spare block */
        uint32_t *vp = aligned_alloc(64, (size_t)padded * d * 2 + 64);
        float *s = aligned_alloc(64, sizeof(float) * ROWS * padded + 64);
        uint16_t *p = aligned_alloc(64, sizeof(uint16_t) * ROWS * padded + 64);
#pragma omp for schedule(static)
        for (int64_t task = 0; task < batch * heads; task++) {
            const struct head_task at = head_task(task, heads, kv_heads, q_len, k_len, d, q_stride, k_stride,
                                                  v_stride, key_mask);
            attend_head_bf16(q + at.q, q_stride[2], k + at.k, k_stride[2], v + at.v, v_stride[2], q_len, k_len,
                             d, at.visible, causal, scale, out + at.out, heads * d, kp, vp, s, p);
        }
        free(kp);
        free(vp);
        free(s);
        free(p);
    }
    return 0;
}
#else
int attend_bf16_built(void) { return 0; }

int attend_bf16(const uint16_t *q, const uint16_t *k, const uint16_t *v, int64_t batch, int64_t heads,
                int64_t kv_heads, int64_t q_len, int64_t k_len, int64_t d, const int64_t *q_stride,
                const int64_t *k_stride, const int64_t *v_stride, const uint8_t *key_mask, int causal,
                float scale, uint16_t *out, int threads) {
    (void)q; (void)k; (void)v; (void)batch; (void)heads; (void)kv_heads; (void)q_len; (void)k_len; (void)d;
    (void)q_stride; (void)k_stride; (void)v_stride; (void)key_mask; (void)causal; (void)scale; (void)out;
    (void)threads;
    return -1;
}
#endif
