"""Prints text that is not JSON on its last line."""

print('{"x": 1}')
print("all done, throughput was great")
