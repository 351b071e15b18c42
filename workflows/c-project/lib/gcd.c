#include "calc.h"
num gcd(num a, num b) {
    while (b != 0) {
        num t = a % b;
        a = b;
        b = t;
    }
    return a < 0 ? -a : a;
}
