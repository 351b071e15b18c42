#ifndef CALC_H
#define CALC_H
#include "common.h"
num add(num a, num b);
num mul(num a, num b);
num gcd(num a, num b);
num fact(num n);
num fib(num n);
int is_prime(num n);
num sum(const num *xs, int n);
#endif
