module airgap.invalid/tests/standin

go 1.22
