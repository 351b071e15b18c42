#include <stdio.h>
#include <stdlib.h>
#include "calc.h"
int main(int argc, char **argv) {
    num n = argc > 1 ? atol(argv[1]) : 10;
    printf("fib(%ld) = %ld, %ld! = %ld, prime: %d\n", n, fib(n), n, fact(n), is_prime(n));
    return 0;
}
