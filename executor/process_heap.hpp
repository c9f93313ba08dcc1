#pragma once

namespace loom::exec {

// Keeps freed heap memory mapped, so that the per-call scratch buffers of Eigen's GEMMs are
// reused instead of being mapped afresh (and page-faulted) on every call. Call once, first.
void keep_heap_mapped();

}  // namespace loom::exec
