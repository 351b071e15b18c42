#include "calc.h"
num sum(const num *xs, int n) {
    num total = 0;
    for (int i = 0; i < n; i++) total = add(total, xs[i]);
    return total;
}
