"""The PriorGrad acoustic model (text -> mel): ..."""
