# Offline checks of the SAM stack (filled in by the SAM stack work).
.PHONY: infra-check
infra-check:
	@true
