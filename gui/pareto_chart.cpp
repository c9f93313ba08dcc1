#include "gui/pareto_chart.hpp"
