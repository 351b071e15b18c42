#ifndef COMMON_H
#define COMMON_H
typedef long num;
#define COUNT_OF(a) (sizeof(a) / sizeof((a)[0]))
#endif
