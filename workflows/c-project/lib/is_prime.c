#include "calc.h"
int is_prime(num n) {
    if (n < 2) return 0;
    for (num d = 2; d * d <= n; d++)
        if (n % d == 0) return 0;
    return 1;
}
