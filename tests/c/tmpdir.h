/* A temporary folder per C test program: created by cmocka's group setup, removed with all its
 * contents by the group teardown. */
#ifndef SL_TEST_TMPDIR_H
#define SL_TEST_TMPDIR_H

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>

static char tmp_root[64];

static int tmp_remove_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(p);
}

/* cmocka group setup: makes /tmp/sl_<TMPDIR_NAME>_XXXXXX */
static int setup(void **state)
{
    (void)state;
    snprintf(tmp_root, sizeof tmp_root, "/tmp/sl_%s_XXXXXX", TMPDIR_NAME);
    return mkdtemp(tmp_root) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    return nftw(tmp_root, tmp_remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

#endif
