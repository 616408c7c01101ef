/* test_edit_key: the key trigger's unit keys, nearest-key cosine and per-fact threshold against hand cases (the firing on the real model: test_edit_gate). */
#include <math.h>
#include <string.h>

#include "edit/edit_key.h"
#include "testutil.h"

static void test_key_of(void) {
    const float h[3] = {4, 1, 3}, c[3] = {1, 1, -1};
    float k[3];
    edit_key_of(h, c, 3, k); /* (3, 0, 4) / 5 */
    CHECK(fabsf(k[0] - 0.6f) < 1e-6f && k[1] == 0.0f && fabsf(k[2] - 0.8f) < 1e-6f, "key of (4,1,3)-(1,1,-1) is "
          "(%g, %g, %g), expected (0.6, 0, 0.8)", k[0], k[1], k[2]);
    edit_key_of(c, c, 3, k);
    CHECK(k[0] == 0.0f && k[1] == 0.0f && k[2] == 0.0f, "a state equal to the centre gives the zero key");
}

static void test_nearest(void) {
    const float keys[6] = {1, 0, 0, 0, 1, 0}, q[3] = {0.6f, 0.8f, 0};
    CHECK(fabsf(edit_key_nearest(q, keys, 2, 3) - 0.8f) < 1e-6f, "nearest of (0.6, 0.8, 0) to e1, e2 is %g, expected "
          "0.8", edit_key_nearest(q, keys, 2, 3));
    CHECK(edit_key_nearest(q, keys, 0, 3) == -1.0f, "no keys: -1");
}

static void test_threshold(void) {
    const float own[6] = {1, 0, 0, 0, 1, 0};
    const float neg[6] = {0.6f, 0, 0.8f, 0, 0, 1}; /* nearest cosines 0.6 and 0 */
    float t = edit_key_threshold(own, 2, neg, 2, 3, 0.5f, 0.02f);
    CHECK(fabsf(t - 0.62f) < 1e-6f, "threshold %g, expected nearest negative 0.6 + margin 0.02", t);
    t = edit_key_threshold(own, 2, neg + 3, 1, 3, 0.5f, 0.02f);
    CHECK(fabsf(t - 0.5f) < 1e-6f, "threshold %g, expected the floor 0.5 above a far negative", t);
    t = edit_key_threshold(own, 2, own, 1, 3, 0.5f, 0.02f);
    CHECK(t == EDIT_KEY_MAX_THRESHOLD, "a negative equal to an own prompt caps the threshold at %g (got %g) so the own "
          "prompts still fire", EDIT_KEY_MAX_THRESHOLD, t);
    t = edit_key_threshold(own, 2, NULL, 0, 3, 0.5f, 0.02f);
    CHECK(fabsf(t - 0.5f) < 1e-6f, "no negatives: the floor (got %g)", t);
}

int main(void) {
    test_key_of();
    test_nearest();
    test_threshold();
    return testutil_finish("test_edit_key");
}
