"""The result cache, in the model of Bazel's remote cache: an action cache (action key ->
ActionResult) over a content store (blobs by Digest), in tiers. `base` says what a tier
speaks, `local` is this machine's tier, `restore` brings a result back into the workspace from
any tier, `tiers` composes them, `facade` is what the build loop uses, `upkeep` keeps the
local tier (stats, prune, verify, clear). Nothing is imported here, so a run loads only what
it uses."""
