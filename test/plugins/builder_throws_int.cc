// A compatible plugin whose job builder throws something that is not a std::exception.
#include <weir/weir.h>

namespace {

void build(weir::JobBuilder&) {
  throw 42;
}

}  // namespace

WEIR_PLUGIN("builder_throws_int", "0.0.1", build)
