// The launch rule: each branch with its exact launcher arguments, threads and warning. Pure, so
// it is checked for machines other than this one (the cores are an input).

#include "cli/launch.hpp"
#include "core/error.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>  // setenv, unsetenv

namespace loom::cli {
namespace {

using ::testing::HasSubstr;
using Args = std::vector<std::string>;

LaunchRequest request(const std::string& launcher, int64_t ranks, int64_t per_node, int threads,
                      int cores) {
  return {launcher, ranks, per_node, threads, cores};
}

TEST(LaunchRule, OneRankGetsEveryCoreAndIsBoundToThemAll) {
  // The reported case: one rank, two threads, and Open MPI's default pinned both to one core.
  const Launch launch = launch_for(request("mpirun", 1, 1, 0, 2));
  EXPECT_EQ(launch.threads_per_rank, 2);
  EXPECT_EQ(launch.launcher_args,
            (Args{"mpirun", "-np", "1", "--map-by", "slot:PE=2", "--bind-to", "core"}));
  EXPECT_EQ(launch.warning, "");
}

TEST(LaunchRule, RanksThatFitAreEachBoundToTheirThreadsCores) {
  const Launch two = launch_for(request("mpirun", 2, 2, 0, 2));
  EXPECT_EQ(two.threads_per_rank, 1);
  EXPECT_EQ(two.launcher_args,
            (Args{"mpirun", "-np", "2", "--map-by", "slot:PE=1", "--bind-to", "core"}));
  EXPECT_EQ(two.warning, "");
  // 4 ranks of 4 threads on 16 cores; an explicit count that fits is kept as given.
  const Launch big = launch_for(request("mpirun", 4, 4, 3, 16));
  EXPECT_EQ(big.threads_per_rank, 3);
  EXPECT_EQ(big.launcher_args,
            (Args{"mpirun", "-np", "4", "--map-by", "slot:PE=3", "--bind-to", "core"}));
  EXPECT_EQ(big.warning, "");
  EXPECT_EQ(launch_for(request("mpirun", 4, 4, 0, 16)).threads_per_rank, 4);
}

TEST(LaunchRule, ThreadsBeyondTheCoresLeaveTheRanksUnboundWithAWarning) {
  const Launch launch = launch_for(request("mpirun", 2, 2, 2, 2));
  EXPECT_EQ(launch.threads_per_rank, 2);
  EXPECT_EQ(launch.launcher_args, (Args{"mpirun", "-np", "2", "--bind-to", "none"}));
  EXPECT_EQ(launch.warning,
            "2 ranks per node × 2 threads per rank = 4 threads on 2 cores: ranks will share cores "
            "and slow each other, so they run unbound (--threads 1 fits)");
  // One rank asking for more threads than cores: unbound too (PE=3 on 2 cores is refused).
  const Launch one = launch_for(request("mpirun", 1, 1, 3, 2));
  EXPECT_EQ(one.launcher_args, (Args{"mpirun", "-np", "1", "--bind-to", "none"}));
  EXPECT_THAT(one.warning,
              HasSubstr("1 rank per node × 3 threads per rank = 3 threads on 2 cores"));
  EXPECT_THAT(one.warning, HasSubstr("(--threads 2 fits)"));
}

TEST(LaunchRule, MoreRanksThanCoresOversubscribeUnbound) {
  const Launch launch = launch_for(request("mpirun", 4, 4, 0, 2));
  EXPECT_EQ(launch.threads_per_rank, 1);
  EXPECT_EQ(launch.launcher_args,
            (Args{"mpirun", "-np", "4", "--oversubscribe", "--bind-to", "none"}));
  EXPECT_EQ(launch.warning,
            "4 ranks per node × 1 thread per rank = 4 threads on 2 cores: ranks will share cores "
            "and slow each other, so they run unbound (more ranks than cores: 2 ranks of 1 thread "
            "fit a node)");
}

TEST(LaunchRule, RanksPerNodeNotRanksInAllMeetTheCores) {
  // 2 nodes of 2 ranks, 8 cores each: 4 threads per rank fit each node.
  const Launch launch = launch_for(request("mpirun", 4, 2, 0, 8));
  EXPECT_EQ(launch.threads_per_rank, 4);
  EXPECT_EQ(launch.launcher_args,
            (Args{"mpirun", "-np", "4", "--map-by", "slot:PE=4", "--bind-to", "core"}));
  EXPECT_EQ(launch.warning, "");
}

TEST(LaunchRule, SrunGivesEachTaskItsThreadsCpus) {
  const Launch launch = launch_for(request("srun", 8, 4, 0, 16));
  EXPECT_EQ(launch.threads_per_rank, 4);
  EXPECT_EQ(launch.launcher_args, (Args{"srun", "--ntasks", "8", "--cpus-per-task", "4"}));
  EXPECT_EQ(launch.warning, "");
  // Slurm allocates the CPUs or refuses: nothing to warn of from this host's count.
  const Launch many = launch_for(request("srun", 2, 2, 8, 2));
  EXPECT_EQ(many.launcher_args, (Args{"srun", "--ntasks", "2", "--cpus-per-task", "8"}));
  EXPECT_EQ(many.warning, "");
}

TEST(LaunchRule, NoLauncherAddsNothingButStillWarns) {
  const Launch fits = launch_for(request("none", 1, 1, 0, 2));
  EXPECT_EQ(fits.threads_per_rank, 2);
  EXPECT_EQ(fits.launcher_args, Args{});
  EXPECT_EQ(fits.warning, "");
  const Launch shared = launch_for(request("none", 1, 1, 4, 2));
  EXPECT_EQ(shared.launcher_args, Args{});
  EXPECT_EQ(
      shared.warning,
      "1 rank per node × 4 threads per rank = 4 threads on 2 cores: ranks will share cores and "
      "slow each other (--threads 2 fits)");
}

TEST(LaunchRule, DefaultThreadsShareTheCoresOutAndAreAtLeastOne) {
  EXPECT_EQ(default_threads_per_rank(1, 2), 2);
  EXPECT_EQ(default_threads_per_rank(2, 2), 1);
  EXPECT_EQ(default_threads_per_rank(3, 8), 2);
  EXPECT_EQ(default_threads_per_rank(4, 2), 1);
  EXPECT_GE(cores_of_this_host(), 1);
}

// A plan of two nodes launched by mpirun without a host list runs all its ranks here: they share
// this host's cores (before, they were bound as if on two nodes, and Open MPI found too few slots).
TEST(LaunchRule, WithoutAHostListEveryRankSharesThisHost) {
  for (const char* variable : {"OMPI_MCA_orte_default_hostfile", "OMPI_MCA_rmaps_base_hostfile", "SLURM_JOB_NODELIST",
                               "PBS_NODEFILE", "LSB_HOSTS", "PE_HOSTFILE"})
    unsetenv(variable);
  EXPECT_EQ(ranks_per_node_for("mpirun", 4, 2), 4);
  EXPECT_EQ(ranks_per_node_for("srun", 4, 2), 2);
  EXPECT_EQ(ranks_per_node_for("none", 4, 2), 1);
  const Launch here = launch_for(request("mpirun", 4, ranks_per_node_for("mpirun", 4, 2), 0, 2));
  EXPECT_EQ(here.launcher_args, (Args{"mpirun", "-np", "4", "--oversubscribe", "--bind-to", "none"}));
  setenv("PBS_NODEFILE", "/var/spool/pbs/aux/1234", 1);
  EXPECT_EQ(ranks_per_node_for("mpirun", 4, 2), 2) << "the batch system spreads them";
  EXPECT_EQ(ranks_per_node_for("mpirun", 1, 8), 1);
  unsetenv("PBS_NODEFILE");
}

TEST(LaunchRule, RefusesWhatCannotBeLaunched) {
  EXPECT_THROW(launch_for(request("torchrun", 1, 1, 0, 2)), InvalidInput);
  EXPECT_THROW(launch_for(request("mpirun", 0, 1, 0, 2)), InvalidInput);
  EXPECT_THROW(launch_for(request("mpirun", 2, 4, 0, 2)), InvalidInput);
  EXPECT_THROW(launch_for(request("mpirun", 1, 1, -1, 2)), InvalidInput);
  EXPECT_THROW(launch_for(request("mpirun", 1, 1, 0, 0)), InvalidInput);
}

}  // namespace
}  // namespace loom::cli
