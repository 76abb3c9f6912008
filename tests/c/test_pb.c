/* The protobuf wire reader and writer: values written come back, packed and unpacked repeated
 * fields read the same, and every malformed byte sequence is an error, not a crash. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "format/pb/pb.h"

static void test_round_trip(void **state)
{
    (void)state;
    sl_pbw w = {0};
    sl_pbw_varint(&w, 1, 0);
    sl_pbw_varint(&w, 2, UINT64_MAX);
    sl_pbw_fixed32(&w, 3, 0x3f800000u); /* 1.0f */
    sl_pbw_fixed64(&w, 4, 0x4000000000000000ull); /* 2.0 */
    size_t at = sl_pbw_begin(&w);
    sl_pbw_str(&w, 1, "inner");
    sl_pbw_end(&w, 5, at);
    sl_pbw_varint(&w, 536870911, 7); /* the largest field number */
    assert_false(w.failed);

    sl_pb m = sl_pb_make(w.buf, w.len);
    sl_pb_field f;
    int has;
    assert_int_equal(sl_pb_next(&m, &f, &has, "t"), SL_OK);
    assert_true(has && f.num == 1 && f.wire == SL_PB_VARINT && f.u == 0);
    assert_int_equal(sl_pb_next(&m, &f, &has, "t"), SL_OK);
    assert_true(f.num == 2 && f.u == UINT64_MAX);
    assert_int_equal(sl_pb_next(&m, &f, &has, "t"), SL_OK);
    assert_true(f.num == 3 && sl_pb_float(f.u) == 1.0f);
    assert_int_equal(sl_pb_next(&m, &f, &has, "t"), SL_OK);
    assert_true(f.num == 4 && sl_pb_double(f.u) == 2.0);
    assert_int_equal(sl_pb_next(&m, &f, &has, "t"), SL_OK);
    assert_true(f.num == 5 && f.wire == SL_PB_LEN);
    sl_pb inner = f.bytes;
    assert_int_equal(sl_pb_next(&inner, &f, &has, "t"), SL_OK);
    assert_true(has && f.num == 1 && sl_pb_eq(f.bytes, "inner"));
    assert_int_equal(sl_pb_next(&inner, &f, &has, "t"), SL_OK);
    assert_false(has);
    assert_int_equal(sl_pb_next(&m, &f, &has, "t"), SL_OK);
    assert_true(f.num == 536870911 && f.u == 7);
    assert_int_equal(sl_pb_next(&m, &f, &has, "t"), SL_OK);
    assert_false(has);
    sl_pbw_free(&w);
}

static void read_all(sl_pb m, uint64_t *vals, int *n)
{
    sl_pb_field f;
    int has;
    *n = 0;
    while (sl_pb_next(&m, &f, &has, "t") == SL_OK && has) {
        sl_pb_rep r;
        uint64_t u;
        sl_pb_rep_init(&r, &f);
        while (sl_pb_rep_next(&r, SL_PB_VARINT, &u, &has, "t") == SL_OK && has) {
            vals[(*n)++] = u;
        }
    }
}

static void test_packed_and_unpacked(void **state)
{
    (void)state;
    const uint64_t want[] = {1, 300, 0, 1ull << 40};
    sl_pbw unpacked = {0}, packed = {0}, body = {0};
    for (int i = 0; i < 4; i++) {
        sl_pbw_varint(&unpacked, 10, want[i]);
        /* a packed field's body is the bare varints */
        size_t before = body.len;
        sl_pbw_varint(&body, 1, want[i]);
        memmove(body.buf + before, body.buf + before + 1, body.len - before - 1);
        body.len--;
    }
    sl_pbw_bytes(&packed, 10, body.buf, body.len);
    uint64_t got[8];
    int n;
    read_all(sl_pb_make(unpacked.buf, unpacked.len), got, &n);
    assert_int_equal(n, 4);
    assert_memory_equal(got, want, sizeof want);
    read_all(sl_pb_make(packed.buf, packed.len), got, &n);
    assert_int_equal(n, 4);
    assert_memory_equal(got, want, sizeof want);
    sl_pbw_free(&unpacked);
    sl_pbw_free(&packed);
    sl_pbw_free(&body);
}

static void test_malformed(void **state)
{
    (void)state;
    static const uint8_t cases[][12] = {
        {0x08},                         /* varint field without its value */
        {0x0a, 0x05, 'a'},              /* length past the end */
        {0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, /* 11-byte varint */
        {0x0b},                         /* wire type 3 (groups) */
        {0x00, 0x01},                   /* field number 0 */
        {0x0d, 0x00},                   /* truncated fixed32 */
        {0x09, 0, 0, 0},                /* truncated fixed64 */
    };
    static const size_t lens[] = {1, 3, 12, 1, 2, 2, 4};
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        sl_pb m = sl_pb_make(cases[i], lens[i]);
        sl_pb_field f;
        int has;
        sl_status st = sl_pb_next(&m, &f, &has, "case");
        assert_int_equal(st, SL_ERR_FORMAT);
        assert_non_null(strstr(sl_last_error(), "case"));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_packed_and_unpacked),
        cmocka_unit_test(test_malformed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
