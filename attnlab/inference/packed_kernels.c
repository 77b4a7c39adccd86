/* Dequantize-and-multiply kernels over ggml's block formats, as a .gguf file stores them.

   y[b, n] = sum_k x[b, k] * w[n, k], w dequantized block by block in registers, never written
   to memory, so a batch-1 product (a GEMV, one decode step) streams only the file's bytes.

   Blocks of 32 weights along k (ggml's ggml-common.h layouts; fp16 scales, little-endian):
     Q4_0  18 bytes: d, then 16 bytes qs;      w = d * (q - 8), q in 0..15
     Q4_1  20 bytes: d, m, then 16 bytes qs;   w = d * q + m,   q in 0..15
     Q8_0  34 bytes: d, then 32 int8 q;        w = d * q
   In a 4-bit block element j (< 16) is byte j's low nibble and element j + 16 its high nibble.

   Exactness: d * q is exact in fp32 (11 + 8 significant bits at most), so a fused multiply-add
   d * q + m rounds once, as gguf.quants.dequantize's (d * q) + m does: every weight used here
   is bit for bit the reference's. Only the order of the fp32 sum differs from F.linear's.

   Built at first use by attnlab/inference/packed_kernels.py with the machine's compiler
   (-O3 -march=native); AVX-512 paths where the compiler targets it, portable C elsewhere. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#if defined(__AVX512F__) || defined(__F16C__) || defined(__AVX2__)
#include <immintrin.h>
#endif

enum { QK = 32 };

static inline float half_to_float(const uint8_t *p) {
    uint16_t h = (uint16_t)(p[0] | (p[1] << 8));
#ifdef __F16C__
    return _cvtsh_ss(h);  /* the same conversion in one instruction (exact: every fp16 is an fp32) */
#endif
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 31, man = h & 1023, bits;
    if (exp == 31) {
        bits = sign | 0x7f800000u | (man << 13);
    } else if (exp) {
        bits = sign | ((exp + 112) << 23) | (man << 13);
    } else if (man) {  /* subnormal: normalise */
        exp = 113;
        while (!(man & 1024)) { man <<= 1; exp--; }
        bits = sign | (exp << 23) | ((man & 1023) << 13);
    } else {
        bits = sign;
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

/* One block's 32 weights into w (the reference's values). type: 0 = Q4_0, 1 = Q4_1, 2 = Q8_0. */
static void dequantize_block(int type, const uint8_t *blk, float *w) {
    float d = half_to_float(blk);
    if (type == 2) {
        const int8_t *q = (const int8_t *)(blk + 2);
        for (int j = 0; j < QK; j++) w[j] = d * (float)q[j];
        return;
    }
    float m = type == 1 ? half_to_float(blk + 2) : 0.0f;
    const uint8_t *qs = blk + (type == 1 ? 4 : 2);
    for (int j = 0; j < QK / 2; j++) {
        int lo = qs[j] & 15, hi = qs[j] >> 4;
        if (type == 0) { lo -= 8; hi -= 8; }
        w[j] = d * (float)lo + m;
        w[j + QK / 2] = d * (float)hi + m;
    }
}

static int block_bytes(int type) { return type == 0 ? 18 : type == 1 ? 20 : 34; }

static void dequantize_row(int type, const uint8_t *row, int64_t nb, float *w) {
    int64_t bb = block_bytes(type);
    for (int64_t b = 0; b < nb; b++) dequantize_block(type, row + b * bb, w + b * QK);
}

#ifdef __AVX512F__
/* One weight row's dot product with the activation row x, its blocks read front to back. Two
   accumulator chains (elements 0..15 and 16..31 of each block) hide the FMA latency. type is a
   constant at every call, so each format gets its own loop. One row at a time measured as fast
   as four interleaved rows for Q4_1 and ~1.7x faster for Q8_0 (whose 34-byte blocks are read
   as one stream instead of four).
   A 4-bit block becomes weights by table lookup: its 16 possible values d * q + m (one FMA, the
   reference's rounding) are one register, and each code picks its lane (vpermps), which measured
   ~20% faster than converting the codes to floats. */
static inline __attribute__((always_inline)) void block_weights(const int type, const uint8_t *blk,
                                                                __m512 *w0, __m512 *w1) {
    const __m512 iota = _mm512_setr_ps(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    __m512 d;
    if (type == 1) {  /* d, m in one load and one 128-bit convert, then each in every lane (measured
                         ~3% faster than converting 16 copies of the pair and picking the lanes) */
        uint32_t both;
        memcpy(&both, blk, 4);
        __m128 dm = _mm_cvtph_ps(_mm_cvtsi32_si128((int)both));  /* [d, m, 0, 0] */
        d = _mm512_broadcastss_ps(dm);
        __m512 table = _mm512_fmadd_ps(iota, d, _mm512_broadcastss_ps(_mm_movehdup_ps(dm)));  /* 16 weights */
        __m512i codes = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(blk + 4)));
        *w0 = _mm512_permutexvar_ps(codes, table);  /* byte j in lane j; vpermps reads 4 bits */
        *w1 = _mm512_permutexvar_ps(_mm512_srli_epi32(codes, 4), table);
    } else if (type == 2) {
        d = _mm512_set1_ps(_cvtsh_ss(*(const uint16_t *)blk));
        __m128i q0 = _mm_loadu_si128((const __m128i *)(blk + 2));
        __m128i q1 = _mm_loadu_si128((const __m128i *)(blk + 18));
        *w0 = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q0)), d);
        *w1 = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q1)), d);
    } else {
        d = _mm512_set1_ps(_cvtsh_ss(*(const uint16_t *)blk));
        __m512 table = _mm512_fmadd_ps(iota, d, _mm512_mul_ps(d, _mm512_set1_ps(-8.0f)));
        __m512i codes = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(blk + 2)));
        *w0 = _mm512_permutexvar_ps(codes, table);
        *w1 = _mm512_permutexvar_ps(_mm512_srli_epi32(codes, 4), table);
    }
}

static inline __attribute__((always_inline)) float dot_row(const int type, const uint8_t *row,
                                                           int64_t nb, const float *x) {
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
    const int bb = block_bytes(type);
    for (int64_t b = 0; b < nb; b++) {
        __m512 w0, w1;
        block_weights(type, row + b * bb, &w0, &w1);
        __m512 x0 = _mm512_loadu_ps(x + b * QK), x1 = _mm512_loadu_ps(x + b * QK + 16);
        acc0 = _mm512_fmadd_ps(w0, x0, acc0);
        acc1 = _mm512_fmadd_ps(w1, x1, acc1);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
}

static inline __attribute__((always_inline)) void dequantize_row512(const int type, const uint8_t *row,
                                                                    int64_t nb, float *w) {
    const int bb = block_bytes(type);
    for (int64_t b = 0; b < nb; b++) {
        __m512 w0, w1;
        block_weights(type, row + b * bb, &w0, &w1);
        _mm512_storeu_ps(w + b * QK, w0);
        _mm512_storeu_ps(w + b * QK + 16, w1);
    }
}

static float dot(const float *a, const float *b, int64_t k) {
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 32 <= k; i += 32) {
        acc0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), acc0);
        acc1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16), acc1);
    }
    float s = _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
    for (; i < k; i++) s += a[i] * b[i];
    return s;
}
#else
static float dot(const float *a, const float *b, int64_t k) {
    float acc[8] = {0};
    int64_t i = 0;
    for (; i + 8 <= k; i += 8)
        for (int j = 0; j < 8; j++) acc[j] += a[i + j] * b[i + j];
    float s = 0;
    for (int j = 0; j < 8; j++) s += acc[j];
    for (; i < k; i++) s += a[i] * b[i];
    return s;
}

#ifdef __AVX2__
/* AVX2 without AVX-512: the same one-row dot product on 8-wide vectors (GCC/Clang vector types;
   codes to floats by vpmovzxbd). Each block's 32 weights are formed as the reference forms them
   (d * q exact, + m rounded once) and multiplied into 32 running sums, reduced at the end. Measured
   on Zen 5 (family 26), -march=x86-64-v3, Q4_1 1536 x 576: 89 us a call vs 786 us dequantizing the row into a
   buffer first (AVX-512: 46 us). Baseline x86-64 keeps that buffer path (282 us; the vector types
   without AVX2 measured 1300+ us). */
typedef float v8f __attribute__((vector_size(32)));  /* GCC/Clang vectors: one AVX2 register, two SSE */
typedef int32_t v8s __attribute__((vector_size(32)));

static inline v8f load8(const float *p) {
    v8f v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline v8f bytes_to_float(uint64_t eight) {  /* 8 bytes 0..255, as floats */
    __m256 f = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_cvtsi64_si128((long long)eight)));
    v8f v;
    memcpy(&v, &f, sizeof v);
    return v;
}

static inline __attribute__((always_inline)) float dot_row(const int type, const uint8_t *row,
                                                           int64_t nb, const float *x) {
    v8f acc[4] = {{0}};
    const int bb = block_bytes(type);
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *blk = row + b * bb;
        const float *xb = x + b * QK;
        float d = half_to_float(blk);
        v8f w[4];
        if (type == 2) {
            for (int i = 0; i < 4; i++) {
                uint64_t eight;
                memcpy(&eight, blk + 2 + 8 * i, sizeof eight);  /* int8 codes: as bytes, less 256 if >= 128 */
                v8f q = bytes_to_float(eight);
                w[i] = (q - (v8f)((v8s)(q >= 128.0f) & (v8s)((v8f){0} + 256.0f))) * d;
            }
        } else {
            float m = type == 1 ? half_to_float(blk + 2) : -8.0f * d;  /* Q4_0: d * (q - 8) = d * q - 8 d */
            uint64_t codes[2], nibbles = 0x0f0f0f0f0f0f0f0full;  /* nibbles split 8 bytes at a time */
            memcpy(codes, blk + (type == 1 ? 4 : 2), sizeof codes);
            w[0] = bytes_to_float(codes[0] & nibbles) * d + m;  /* elements 0..7: low nibbles */
            w[1] = bytes_to_float(codes[1] & nibbles) * d + m;
            w[2] = bytes_to_float((codes[0] >> 4) & nibbles) * d + m;  /* 16..23: high nibbles */
            w[3] = bytes_to_float((codes[1] >> 4) & nibbles) * d + m;
        }
        for (int i = 0; i < 4; i++) acc[i] += w[i] * load8(xb + 8 * i);
    }
    v8f sum = (acc[0] + acc[1]) + (acc[2] + acc[3]);
    return ((sum[0] + sum[4]) + (sum[2] + sum[6])) + ((sum[1] + sum[5]) + (sum[3] + sum[7]));
}
#endif  /* __AVX2__ */
#endif

/* y (B, N) = x (B, K) @ w.T with w the (N, K / 32 blocks) rows of `blocks`. threads: OpenMP
   threads over output rows (the caller passes torch's setting). */
void packed_matmul(int type, const uint8_t *blocks, int64_t n, int64_t k, const float *x, int64_t batch,
                   float *y, int threads) {
    int64_t nb = k / QK, row_bytes = nb * block_bytes(type);
#if defined(__AVX512F__) || defined(__AVX2__)
    if (batch == 1) {
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1)
        for (int64_t row = 0; row < n; row++) {
            const uint8_t *r = blocks + row * row_bytes;
            y[row] = type == 0 ? dot_row(0, r, nb, x)
                   : type == 1 ? dot_row(1, r, nb, x) : dot_row(2, r, nb, x);
        }
        return;
    }
#endif
    /* Several activation rows (a prefill), or a CPU without AVX2: dequantize each weight row once into
       a buffer and take its dot product with every activation row. */
#pragma omp parallel num_threads(threads) if (threads > 1)
    {
        float *w = (float *)malloc(sizeof(float) * k);
#pragma omp for schedule(static)
        for (int64_t row = 0; row < n; row++) {
            dequantize_row(type, blocks + row * row_bytes, nb, w);
            for (int64_t b = 0; b < batch; b++) y[b * n + row] = dot(w, x + b * k, k);
        }
        free(w);
    }
}

/* out (N, K) = the dequantized weights of `blocks` (the reference's values): what a prefill's GEMM
   multiplies by. threads: OpenMP threads over rows. */
void dequantize_rows(int type, const uint8_t *blocks, int64_t n_rows, int64_t k, float *out, int threads) {
    int64_t nb = k / QK, row_bytes = nb * block_bytes(type);
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1)
    for (int64_t row = 0; row < n_rows; row++) {
        const uint8_t *r = blocks + row * row_bytes;
        float *w = out + row * k;
#ifdef __AVX512F__
        if (type == 0) dequantize_row512(0, r, nb, w);
        else if (type == 1) dequantize_row512(1, r, nb, w);
        else dequantize_row512(2, r, nb, w);
#else
        dequantize_row(type, r, nb, w);
#endif
    }
}
