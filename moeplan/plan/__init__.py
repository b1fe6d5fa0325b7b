"""`moeplan plan`: search parallel layouts, evaluating moeplan's memory and roofline model over all of them at
once with numpy (search.search is the entry point; docs/plan.md). Nothing is imported here, so the CLI can
declare the command without loading numpy."""
