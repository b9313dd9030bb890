/* The fused elementwise steps of a projection iteration (cdi_dip/solvers/fused.py), in plain C with no
   Python API: loaded with ctypes. Built at install time into a shared library (setup.py, portable flags)
   and, where a C compiler works at run time, compiled again once per machine with -march=native. */
#include <stdint.h>
#include <math.h>

#ifdef CDI_DIP_SOURCE_HASH
/* Which source the library was built from (setup.py defines it): a library left over from an older
   source is not used. */
const char cdi_source_hash[] = CDI_DIP_SOURCE_HASH;
#endif

/* field <- amp / max(|field|, eps) * field where valid; unchanged elsewhere. |field| is sqrtf(re^2 + im^2)
   in single precision (vectorised): within an ulp of torch.abs, which rounds hypot from double precision,
   at less than half the cost (a double sqrt made this pass cost twice a copy of the frame). */
void cdi_modulus(float *restrict f, const float *restrict amp, const uint8_t *restrict valid,
                 int64_t n, float eps) {
    for (int64_t i = 0; i < n; i++) {
        float re = f[2 * i], im = f[2 * i + 1];
        float magnitude = sqrtf(re * re + im * im);
        magnitude = magnitude < eps ? eps : magnitude;  /* clamp_min: NaN stays NaN */
        float s = valid[i] ? amp[i] / magnitude : 1.0f;
        f[2 * i] = re * s;
        f[2 * i + 1] = im * s;
    }
}

/* p <- p inside the support, a x + b p outside (0 when a = b = 0): the new iterate, in place.
   Every load comes first and every choice is a select, so that the loops vectorise. */
void cdi_update(float *restrict p, const float *restrict x, const uint8_t *restrict support,
                int64_t n, float a, float b, int positivity) {
    if (positivity == 1) {          /* ER with Re x >= 0: clip inside (NaN stays NaN, as clamp_min), zero outside */
        for (int64_t i = 0; i < n; i++) {
            float pr = p[2 * i], pi = p[2 * i + 1];
            int s = support[i];
            float clipped = pr < 0.0f ? 0.0f : pr;
            p[2 * i] = s ? clipped : 0.0f;
            p[2 * i + 1] = s ? pi : 0.0f;
        }
    } else if (a == 0.0f && b == 0.0f) {  /* ER */
        for (int64_t i = 0; i < n; i++) {
            float pr = p[2 * i], pi = p[2 * i + 1];
            int s = support[i] & ((positivity != 2) | (pr >= 0.0f));
            p[2 * i] = s ? pr : 0.0f;
            p[2 * i + 1] = s ? pi : 0.0f;
        }
    } else {                        /* HIO, RAAR; with Re x >= 0, Re p < 0 counts as outside */
        const int negative_outside = positivity == 2;
        for (int64_t i = 0; i < n; i++) {
            float pr = p[2 * i], pi = p[2 * i + 1];
            float xr = x[2 * i], xi = x[2 * i + 1];
            int s = support[i] & (!negative_outside | (pr >= 0.0f));
            float outside_r = a * xr + b * pr, outside_i = a * xi + b * pi;
            p[2 * i] = s ? pr : outside_r;
            p[2 * i + 1] = s ? pi : outside_i;
        }
    }
}
