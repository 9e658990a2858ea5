# migvis_add_test(NAME <name> LABEL <unit|slow|mpi|slurm|gpu> SOURCES ... LIBS ...
#                 [TIMEOUT s] [MPI_RANKS n] [SERIAL])
# One GoogleTest executable per call; every test case in it carries LABEL, so
# `ctest -L unit` runs only what needs nothing. MPI_RANKS runs the whole binary
# under mpirun instead of discovering cases. SERIAL: ctest runs nothing else
# beside it (whole-pipeline tests that need both cores to finish in time).
function(migvis_add_test)
  cmake_parse_arguments(T "SERIAL" "NAME;LABEL;TIMEOUT;MPI_RANKS" "SOURCES;LIBS" ${ARGN})
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 300)
  endif()
  add_executable(${T_NAME} ${T_SOURCES})
  target_link_libraries(${T_NAME} PRIVATE ${T_LIBS} GTest::gtest GTest::gtest_main GTest::gmock)
  target_compile_options(${T_NAME} PRIVATE ${MIGVIS_WARNINGS})
  target_compile_definitions(${T_NAME} PRIVATE
    MIGVIS_SOURCE_DIR="${PROJECT_SOURCE_DIR}" MIGVIS_BINARY_DIR="${PROJECT_BINARY_DIR}")
  if(T_MPI_RANKS)
    add_test(NAME ${T_NAME}
             COMMAND ${MPIEXEC_EXECUTABLE} --allow-run-as-root --oversubscribe --bind-to none
                     -np ${T_MPI_RANKS} $<TARGET_FILE:${T_NAME}>)
    set_tests_properties(${T_NAME} PROPERTIES LABELS ${T_LABEL} TIMEOUT ${T_TIMEOUT})
  else()
    # Every slurm test starts its own private cluster on the same ports: one at a time.
    set(lock "")
    if(T_LABEL STREQUAL "slurm")
      set(lock RESOURCE_LOCK migvis_slurm_cluster)
    endif()
    if(T_SERIAL)
      list(APPEND lock RUN_SERIAL TRUE)
    endif()
    gtest_discover_tests(${T_NAME}
      DISCOVERY_MODE PRE_TEST
      PROPERTIES LABELS ${T_LABEL} TIMEOUT ${T_TIMEOUT} ${lock})
  endif()
endfunction()
