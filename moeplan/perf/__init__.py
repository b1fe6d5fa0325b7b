"""Speed: the time of one engine step per operation and per layer, continuous batching, and the roofline bound.

One model evaluates a scalar layout (`moeplan estimate`, plain Python) and arrays of layouts (`moeplan plan`,
numpy) through the small namespace of moeplan.namespace. See docs/formulas.md §Speed.
"""
