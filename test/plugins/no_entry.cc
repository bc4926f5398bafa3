// A well-formed shared library that is not a Weir plugin: it exports an unrelated function and no
// weir_plugin_v<N> entry.
extern "C" __attribute__((visibility("default"))) int weir_test_not_a_plugin() {
  return 42;
}
