#include "calc.h"
num fact(num n) { return n <= 1 ? 1 : mul(n, fact(n - 1)); }
