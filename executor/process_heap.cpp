#include "executor/process_heap.hpp"

#include <malloc.h>

namespace loom::exec {

void keep_heap_mapped() {
  // Eigen allocates its packing buffers on the heap in every GEMM with a depth beyond one
  // panel. glibc serves blocks above its mmap threshold (128 KiB at first, then adjusted by
  // what was freed) with mmap and returns them with munmap, so each call faults in fresh
  // pages: a 128×128×512 fp32 GEMM took 0.93 ms that way on the 2-core EPYC VM this was
  // written on, 0.11 ms with the buffers reused — and which of the two a call got depended on
  // the history of the heap. A fixed threshold at glibc's maximum (32 MiB on 64-bit) and no
  // trimming make every scratch buffer come from, and return to, the heap.
  mallopt(M_MMAP_THRESHOLD, 32 * 1024 * 1024);
  mallopt(M_TRIM_THRESHOLD, 1024 * 1024 * 1024);
}

}  // namespace loom::exec
