/* Every core says hello, in core order: one core prints per barrier round. */

#include "runtime.h"

int main(unsigned core)
{
    uint32_t start = cycles();
    for (unsigned turn = 0; turn < num_cores(); turn++) {
        if (turn == core)
            printf("hello from core %u\n", core);
        barrier();
    }
    if (core == 0)
        printf("%u cores, %u cycles on core 0\n", num_cores(), cycles() - start);
    return 0;
}
