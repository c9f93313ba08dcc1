#include "gui/results_view.hpp"
