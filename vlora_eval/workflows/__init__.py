"""What combines the floors below (vlora/ models and training, evalsuite/ the harness, flops/ cost): the
training command, the embedded default, sweeps and the report. Imported by vlora_eval/cli/ only."""
