// A compatible plugin whose job builder throws a standard exception.
#include <weir/weir.h>

#include <stdexcept>

namespace {

void build(weir::JobBuilder&) {
  throw std::runtime_error("boom");
}

}  // namespace

WEIR_PLUGIN("builder_throws", "0.0.1", build)
