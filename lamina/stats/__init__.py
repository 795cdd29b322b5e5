"""Per-neuron statistics for "which neurons respond to a contrast", vectorised over neurons.

    checks        input checks, the per-neuron table layout (conventions)
    neuron_tests  occurrence-level tests: Welch / paired t, Mann-Whitney U, d and d_z, (partial) correlation,
                  token-identity share
    clustered     cluster-robust OLS slopes (one- or two-way, CGM; CR2 with Bell-McCaffrey df, or CR1), the primary
                  test for repeated units
    primary       the primary test of a design (clustered / paired / occurrence, with controls) and its null
                  labellings
    multiple      BH FDR and Bonferroni over a stated family
    nulls         the one permutation null: of the count of significant neurons (the NaN-p rule, failed draws
                  counted), and each neuron's randomization p at the unit
    replication   the replication split over halves of the units
    probes        one-neuron logistic regression (LR test, grouped CV decoding), sparse probes
"""
from lamina.stats.checks import MIN_GROUP_SIZE, TooFewSamplesError
from lamina.stats.clustered import ClusterDesign, cluster_ols
from lamina.stats.multiple import CorrectedPValues, correct_pvalues
from lamina.stats.neuron_tests import contrast_tests, correlation_tests, token_identity_control
from lamina.stats.nulls import (
                                PermutationNull,
                                PermutationPValues,
                                count_per_layer,
                                null_band,
                                null_counts,
                                permutation_null,
                                permutation_pvalues,
)
from lamina.stats.primary import PrimaryDesign, label_draws, null_pvalues, primary_test
from lamina.stats.probes import logistic_tests, rank_neurons, sparse_probe
from lamina.stats.replication import ReplicationSplit, replication_split

__all__ = [
    "MIN_GROUP_SIZE", "TooFewSamplesError", "ClusterDesign", "cluster_ols", "CorrectedPValues", "correct_pvalues",
    "contrast_tests", "correlation_tests", "token_identity_control", "PermutationNull", "count_per_layer",
    "null_band", "null_counts", "permutation_null", "PermutationPValues", "permutation_pvalues", "PrimaryDesign",
    "label_draws", "null_pvalues", "primary_test",
    "logistic_tests", "rank_neurons", "sparse_probe", "ReplicationSplit", "replication_split",
]
