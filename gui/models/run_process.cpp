#include "gui/models/run_process.hpp"
