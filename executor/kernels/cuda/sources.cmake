# The CUDA backend's files (included by executor/CMakeLists.txt when LOOM_HAVE_CUDA).
set(LOOM_CUDA_KERNEL_SOURCES
  ${CMAKE_CURRENT_LIST_DIR}/attention.cu
  ${CMAKE_CURRENT_LIST_DIR}/cuda_check.cpp
  ${CMAKE_CURRENT_LIST_DIR}/cuda_kernels.cpp
  ${CMAKE_CURRENT_LIST_DIR}/device_pool.cpp
  ${CMAKE_CURRENT_LIST_DIR}/elementwise.cu
  ${CMAKE_CURRENT_LIST_DIR}/flash_backward.cu
  ${CMAKE_CURRENT_LIST_DIR}/flash_forward.cu
  ${CMAKE_CURRENT_LIST_DIR}/gemm.cpp
  ${CMAKE_CURRENT_LIST_DIR}/layernorm.cu
  ${CMAKE_CURRENT_LIST_DIR}/llama_ops.cu
  ${CMAKE_CURRENT_LIST_DIR}/optimizer.cu
  ${CMAKE_CURRENT_LIST_DIR}/vocabulary.cu)
