#include "calc.h"
num add(num a, num b) { return a + b; }
