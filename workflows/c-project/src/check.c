#include <stdio.h>
#include <string.h>
#include "calc.h"
#include "text.h"
static int failures = 0;
#define CHECK(cond) do { if (!(cond)) { printf("FAIL: %s\n", #cond); failures++; } } while (0)
int main(void) {
    num xs[] = {1, 2, 3, 4};
    char word[] = "dagmake";
    CHECK(add(2, 3) == 5);
    CHECK(mul(4, 5) == 20);
    CHECK(gcd(12, 18) == 6);
    CHECK(fact(5) == 120);
    CHECK(fib(10) == 55);
    CHECK(is_prime(13) && !is_prime(15));
    CHECK(sum(xs, (int)COUNT_OF(xs)) == 10);
    reverse(word);
    CHECK(strcmp(word, "ekamgad") == 0);
    upper(word);
    CHECK(strcmp(word, "EKAMGAD") == 0);
    CHECK(count_char("banana", 'a') == 3);
    printf("%d checks failed\n", failures);
    return failures != 0;
}
