#include "calc.h"
num fib(num n) {
    num a = 0, b = 1;
    for (num i = 0; i < n; i++) {
        num t = add(a, b);
        a = b;
        b = t;
    }
    return a;
}
