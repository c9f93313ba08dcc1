# Optional parts of Loom. Each option is AUTO (built when its dependencies are found,
# skipped with one configure-time line saying so), ON (required: configuring fails when
# missing) or OFF (never built). The results are LOOM_HAVE_MPI and LOOM_HAVE_GUI.
# (There is no CUDA option yet: it comes with the CUDA backend, so that configuring never reports
# a backend that is not built.)

set(LOOM_WITH_MPI AUTO CACHE STRING "Build the MPI executor (AUTO, ON, OFF)")
set(LOOM_WITH_GUI AUTO CACHE STRING "Build the Qt 6 desktop app (AUTO, ON, OFF)")
foreach(option LOOM_WITH_MPI LOOM_WITH_GUI)
  set_property(CACHE ${option} PROPERTY STRINGS AUTO ON OFF)
endforeach()

# Reports the outcome of one optional part; fails when it was required but not found.
function(loom_report_option option part found detail)
  set(value "${${option}}")
  if(found)
    message(STATUS "Loom: ${part}: ON (${detail})")
  elseif(value STREQUAL "ON")
    message(FATAL_ERROR "Loom: ${part} was required (${option}=ON) but ${detail}")
  elseif(value STREQUAL "OFF")
    message(STATUS "Loom: ${part}: OFF (${option}=OFF)")
  else()
    message(STATUS "Loom: ${part}: skipped, ${detail} (set ${option}=OFF to silence)")
  endif()
endfunction()

# MPI: the executor's launcher and CPU communicator.
set(LOOM_HAVE_MPI FALSE)
if(NOT LOOM_WITH_MPI STREQUAL "OFF")
  find_package(MPI QUIET COMPONENTS CXX)
  if(MPI_CXX_FOUND)
    set(LOOM_HAVE_MPI TRUE)
    set(mpi_detail "MPI ${MPI_CXX_VERSION}, launcher ${MPIEXEC_EXECUTABLE}")
  else()
    set(mpi_detail "no MPI library found (Debian: libopenmpi-dev openmpi-bin)")
  endif()
else()
  set(mpi_detail "")
endif()
loom_report_option(LOOM_WITH_MPI "MPI executor" ${LOOM_HAVE_MPI} "${mpi_detail}")

# GUI: Qt 6 Widgets + Charts.
set(LOOM_HAVE_GUI FALSE)
if(NOT LOOM_WITH_GUI STREQUAL "OFF")
  find_package(Qt6 QUIET COMPONENTS Widgets Charts Concurrent Test)
  if(Qt6_FOUND)
    set(LOOM_HAVE_GUI TRUE)
    set(gui_detail "Qt ${Qt6_VERSION} Widgets + Charts")
  else()
    set(gui_detail "Qt 6 Widgets/Charts not found (Debian: qt6-base-dev libqt6charts6-dev)")
  endif()
else()
  set(gui_detail "")
endif()
loom_report_option(LOOM_WITH_GUI "Qt desktop app" ${LOOM_HAVE_GUI} "${gui_detail}")
