// Umbrella header for job authors.
#pragma once

#include "weir/collector.h"
#include "weir/context.h"
#include "weir/file_sink.h"
#include "weir/format.h"
#include "weir/functions.h"
#include "weir/job_args.h"
#include "weir/key_groups.h"
#include "weir/plugin.h"
#include "weir/serde.h"
#include "weir/sinks.h"
#include "weir/sources.h"
#include "weir/state.h"
#include "weir/stream.h"
#include "weir/two_phase_commit.h"
#include "weir/watermarks.h"
