#include "text.h"
num count_char(const char *s, char c) {
    num n = 0;
    for (; *s; s++) n += *s == c;
    return n;
}
