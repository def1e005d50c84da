/* Self-checking of a compiled program (see dl_check.h). */

#include "dl_check.h"

#include "runtime.h"

#define DL_MAX_PRINTED 4

static volatile int mismatches[CLUSTER_CORES] L1_BSS;

/* All cores: sum the per-core counts of one tensor and report it on core 0. */
static int dl_check_total(unsigned core, const char *name, int elements, int count)
{
    mismatches[core] = count;
    barrier();
    int total = 0;
    for (unsigned i = 0; i < num_cores(); i++)
        total += mismatches[i];
    barrier();
    if (core == 0)
        printf("check: tensor=%s elements=%d mismatches=%d\n", name, elements, total);
    return total != 0;
}

int dl_check(unsigned core, const char *name, const int8_t *got, const int8_t *expected,
             int rows, int cols, int pitch)
{
    int count = 0;
    for (int r = (int)core; r < rows; r += (int)num_cores()) {
        for (int c = 0; c < cols; c++) {
            int g = got[r * pitch + c], e = expected[r * pitch + c];
            if (g != e) {
                if (count < DL_MAX_PRINTED)
                    printf("mismatch: tensor=%s row=%d col=%d got=%d expected=%d\n", name, r, c,
                           g, e);
                count++;
            }
        }
    }
    return dl_check_total(core, name, rows * cols, count);
}

int dl_check32(unsigned core, const char *name, const int32_t *got, const int32_t *expected,
               int rows, int cols, int pitch)
{
    int count = 0;
    for (int r = (int)core; r < rows; r += (int)num_cores()) {
        for (int c = 0; c < cols; c++) {
            int32_t g = got[r * pitch + c], e = expected[r * pitch + c];
            if (g != e) {
                if (count < DL_MAX_PRINTED)
                    printf("mismatch: tensor=%s row=%d col=%d got=%d expected=%d\n", name, r, c,
                           (int)g, (int)e);
                count++;
            }
        }
    }
    return dl_check_total(core, name, rows * cols, count);
}
