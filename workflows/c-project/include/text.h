#ifndef TEXT_H
#define TEXT_H
#include "common.h"
void reverse(char *s);
void upper(char *s);
num count_char(const char *s, char c);
#endif
