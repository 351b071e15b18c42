#include <ctype.h>
#include "text.h"
void upper(char *s) {
    for (; *s; s++) *s = (char)toupper((unsigned char)*s);
}
