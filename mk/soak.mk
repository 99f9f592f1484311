# The chaos soak (issue #13; test/e2e/README.md, "Chaos soak"). Included from the Makefile;
# targets carry `## ` comments for the Makefile's `help`.
#   make soak                        600 s, random seed (printed)
#   SOAK_SECONDS=120 make soak       the CI-sized run
#   SOAK_SEED=1234 make soak         replays the fault schedule and traffic choices of seed 1234

# Keep the including Makefile's default goal (`help`): this file must not become the default.
_SOAK_MK_PREVIOUS_GOAL := $(.DEFAULT_GOAL)

.PHONY: soak

soak: deps ## Chaos soak: own local cluster, 150+ clients, random faults; SOAK_SECONDS (600), SOAK_SEED; results in .run/soak/
	SOAK=1 npx jest --selectProjects soak --runInBand --forceExit

.DEFAULT_GOAL := $(_SOAK_MK_PREVIOUS_GOAL)
