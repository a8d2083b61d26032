"""vvc-codebook: dynamic-codebook HexPlane volumetric video."""
