# The device communicators' files (included by executor/CMakeLists.txt when LOOM_HAVE_CUDA):
# NCCL, MPI staged through pinned host memory, and the choice between them.
set(LOOM_NCCL_SOURCES
  ${CMAKE_CURRENT_LIST_DIR}/device_world.cpp
  ${CMAKE_CURRENT_LIST_DIR}/nccl_communicator.cpp
  ${CMAKE_CURRENT_LIST_DIR}/staged_communicator.cpp)
