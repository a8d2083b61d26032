"""vvc_grid."""
