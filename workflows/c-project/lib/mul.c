#include "calc.h"
num mul(num a, num b) { return a * b; }
